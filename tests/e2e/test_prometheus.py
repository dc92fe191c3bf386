"""A real Prometheus (Debian's ``prometheus``, installed by ``.ci/run``) scrapes a local
stack with the repository's scrape config, its targets replaced by the stack's ports:
every target is up, the alerting rules load, the dashboard's queries are valid PromQL,
and the contract's series exist and move after traffic that alerts, notifies and
dead-letters. ``promtool`` checks the shipped config and rules."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import yaml
from confluent_kafka import Producer
from prometheus_client.metrics import MetricWrapperBase

from fraud_common import metrics
from tests.support.devstack_helpers import warm_test_stack
from tools.devstack import REPO, DevStack
from tools.local_services import free_port, wait_for

pytestmark = pytest.mark.e2e

MONITORING = REPO / "monitoring"
SCRAPE_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
ALERT_RULES = MONITORING / "prometheus" / "alerts.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "fraud-platform.json"
JOBS = {
    "transaction-service": "transaction",
    "fraud-detection-service": "detector",
    "alert-service": "alert",
    "archive-service": "archive",
}
CONTRACT_SERIES = (
    "fraud_http_requests_total",
    "fraud_http_request_duration_seconds",
    "fraud_transactions_accepted_total",
    "fraud_transactions_evaluated_total",
    "fraud_rule_hits_total",
    "fraud_evaluation_duration_seconds",
    "fraud_decision_latency_seconds",
    "fraud_consumer_lag",
    "fraud_dead_letters_total",
    "fraud_alerts_stored_total",
    "fraud_notifications_total",
)


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed (apt-get install prometheus; .ci/run installs it): "
            "not checked against a real Prometheus"
        )
    return path


# -- the shipped files -------------------------------------------------------------


def test_promtool_accepts_the_shipped_config_and_rules() -> None:
    promtool = _binary("promtool")
    for args in (["check", "config", str(SCRAPE_CONFIG)], ["check", "rules", str(ALERT_RULES)]):
        result = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
    rules = yaml.safe_load(ALERT_RULES.read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {"FraudConsumerLagGrowing", "FraudDeadLetters", "FraudConsumerUnhealthy"} <= names


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_dashboard_shows_every_contract_series() -> None:
    text = "\n".join(_dashboard_queries())
    for series in CONTRACT_SERIES:
        assert series in text, f"no panel shows {series}"
    # and only series the services define
    defined = {m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    for name in set(re.findall(r"fraud_[a-z_]+", text)):
        assert re.sub(r"_(total|bucket|count|sum)$", "", name) in defined, name


# -- a real Prometheus against a local stack ------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint that takes every delivery."""

    def do_POST(self) -> None:  # http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def webhook_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    thread.join(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, webhook_url: str) -> Iterator[DevStack]:
    _binary("prometheus")  # skip before starting anything
    with warm_test_stack(
        tmp_path_factory.mktemp("devstack"),
        detectors=2,  # two workers: /metrics must sum them
        extra_env={"WEBHOOK_URLS": webhook_url, "WEBHOOK_SECRET": secrets.token_hex(24)},
    ) as running:
        yield running


def scrape_config_for(stack: DevStack) -> dict[str, Any]:
    """The repository's config with the stack's ports, scraped every second."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(ALERT_RULES)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(JOBS)
    for job_name, service in JOBS.items():
        port = stack.service(service).port
        assert jobs[job_name].pop("dns_sd_configs"), f"{job_name}: targets from DNS"
        jobs[job_name]["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    return config


class PrometheusApi:
    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def get(self, path: str, **params: str) -> Any:
        response = self.session.get(f"{self.url}{path}", params=params, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def value(self, query: str) -> float | None:
        """The single value of ``query`` (a ``sum(...)``), None when there is no series."""
        result = self.get("/api/v1/query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def prometheus(
    stack: DevStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusApi]:
    binary = _binary("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config_for(stack)))
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = PrometheusApi(f"http://127.0.0.1:{port}")

    def ready() -> bool:
        assert process.poll() is None, (workdir / "prometheus.log").read_text()
        try:
            return api.session.get(f"{api.url}/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(ready, timeout=60, interval=0.2, what="Prometheus to be ready")
        yield api
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _targets_up(api: PrometheusApi) -> bool:
    targets = api.get("/api/v1/targets")["activeTargets"]
    return len(targets) == len(JOBS) and all(t["health"] == "up" for t in targets)


def test_every_target_is_up_and_the_rules_load(prometheus: PrometheusApi) -> None:
    wait_for(lambda: _targets_up(prometheus), timeout=30, interval=0.2, what="3 targets up")
    targets = prometheus.get("/api/v1/targets")["activeTargets"]
    assert {t["labels"]["job"] for t in targets} == set(JOBS)
    # Every decision is a series from the start (at 0), under gunicorn too.
    for decision in ("approve", "review", "decline", "error"):
        query = f'fraud_transactions_evaluated_total{{decision="{decision}"}}'
        assert prometheus.value(f"sum({query})") is not None, query

    def rules_evaluated() -> bool:
        groups = prometheus.get("/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return len(rules) >= 3 and all(
            rule["health"] == "ok" and rule["lastEvaluation"][:4] != "0001" for rule in rules
        )

    wait_for(rules_evaluated, timeout=30, interval=0.2, what="the alerting rules evaluated")


def _send_traffic(stack: DevStack, large: int, small: int) -> None:
    url = f"{stack.service('transaction').url}/api/v1/transactions"
    run = uuid.uuid4().hex[:8]
    session = requests.Session()
    for index in range(large + small):
        body = {
            "userId": f"prom-{run}-{index}",  # one user each: no notification cooldown
            "amount": "25000.00" if index < large else "12.50",
            "currency": "USD",
            "location": "Berlin",
        }
        response = session.post(url, json=body, timeout=10)
        assert response.status_code == 201, response.text
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap_servers})
    producer.produce(stack.transactions_topic, value=b"not a transaction", key=b"poison")
    assert producer.flush(15) == 0


def test_series_exist_and_move_after_traffic(stack: DevStack, prometheus: PrometheusApi) -> None:
    wait_for(lambda: _targets_up(prometheus), timeout=30, interval=0.2, what="3 targets up")
    dlq = f"{stack.transactions_topic}.dlq"
    large, small = 4, 3
    wanted = {  # query -> least increase
        "sum(fraud_transactions_accepted_total)": large + small,
        'sum(fraud_http_requests_total{service="transaction-service",'
        'route="/api/v1/transactions",status="201"})': large + small,
        'sum(fraud_http_request_duration_seconds_count{service="transaction-service"})': 1,
        "sum(fraud_transactions_evaluated_total)": large + small,
        'sum(fraud_transactions_evaluated_total{decision="review"})': large,
        'sum(fraud_rule_hits_total{rule="large-amount",mode="active"})': large,
        "sum(fraud_evaluation_duration_seconds_count)": 1,
        "sum(fraud_decision_latency_seconds_count)": large + small,
        'sum(fraud_alerts_stored_total{alert_type="large_transaction_detected"})': large,
        'sum(fraud_notifications_total{result="delivered"})': large,
        f'sum(fraud_dead_letters_total{{topic="{dlq}"}})': 1,
    }
    before = {query: prometheus.value(query) or 0.0 for query in wanted}
    _send_traffic(stack, large, small)

    now: dict[str, float | None] = {}

    def moved() -> bool:
        now.update({query: prometheus.value(query) for query in wanted})
        return all((now[query] or 0.0) - before[query] >= least for query, least in wanted.items())

    try:
        wait_for(moved, timeout=90, interval=0.5, what="every series to move")
    except TimeoutError:
        pytest.fail(f"series did not move: before {before}, now {now}")

    detector_group = stack.service("detector").env.get("CONSUMER_GROUP", "fraud-detection-group")
    alert_group = stack.service("alert").env.get("CONSUMER_GROUP", "fraud-alert-group")

    def lag_of_both_groups() -> bool:
        found = prometheus.get("/api/v1/series", **{"match[]": "fraud_consumer_lag"})
        return {detector_group, alert_group} <= {series["group"] for series in found}

    # Each loop reports its lag every 2 s, from partitions it has consumed from.
    wait_for(lag_of_both_groups, timeout=30, interval=0.5, what="the lag of both groups")
    lag = prometheus.value("sum(fraud_consumer_lag)")
    assert lag is not None and lag >= 0
    heartbeat = prometheus.value("time() - min(fraud_consumer_last_poll_timestamp_seconds)")
    assert heartbeat is not None and heartbeat < 30


def test_dashboard_queries_run(prometheus: PrometheusApi) -> None:
    for query in _dashboard_queries():
        prometheus.get("/api/v1/query", query=query.replace("$__rate_interval", "1m"))
