"""Helpers of the case tests: alerts as the detector publishes them (with a rule id and a
risk score), and a small client of the alert-service's case routes over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from fraud_common.schemas import Alert
from tests.support.factories import make_alert

RULE_TYPES = {
    "large-amount": "large_transaction_detected",
    "rapid-transactions": "multiple_rapid_transactions_detected",
    "location-change": "unusual_location_change_detected",
    "amount-velocity": "amount_velocity_detected",
}


def rule_alert(user_id: str, rule_id: str = "large-amount", risk: int = 60, **kwargs: Any) -> Alert:
    """An alert of ``rule_id`` (one of `RULE_TYPES`) with its risk score."""
    alert = make_alert(user_id, RULE_TYPES[rule_id], **kwargs)
    return alert.model_copy(update={"ruleId": rule_id, "riskScore": risk, "decision": "review"})


@dataclass
class CasesClient:
    """The case routes of one alert-service, with an API key and analyst if given."""

    base_url: str
    headers: dict[str, str] = field(default_factory=dict)

    def page(self, **params: Any) -> requests.Response:
        return requests.get(
            f"{self.base_url}/api/v1/cases", params=params, headers=self.headers, timeout=10
        )

    def get(self, case_id: str) -> requests.Response:
        return requests.get(
            f"{self.base_url}/api/v1/cases/{case_id}", headers=self.headers, timeout=10
        )

    def post(self, case_id: str, action: str, body: Any, **headers: str) -> requests.Response:
        return requests.post(
            f"{self.base_url}/api/v1/cases/{case_id}/{action}",
            json=body,
            headers={**self.headers, **headers},
            timeout=10,
        )

    def quality(self) -> dict[str, dict[str, Any]]:
        response = requests.get(
            f"{self.base_url}/api/v1/rules/quality", headers=self.headers, timeout=10
        )
        assert response.status_code == 200, response.text
        return {rule["ruleId"]: rule for rule in response.json()["rules"]}

    def all_cases(self, **params: Any) -> list[dict[str, Any]]:
        """Every case, following the cursor."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.page(**params, **({"cursor": cursor} if cursor else {}))
            assert page.status_code == 200, page.text
            body = page.json()
            out += body["cases"]
            cursor = body["nextCursor"]
            if cursor is None:
                return out
