"""Write (or check) ``fraud-detection-service/rules.schema.json``: the JSON Schema of
``rules.yaml``, generated from the pydantic models that load it.

    python tools/rules_schema.py           # write it
    python tools/rules_schema.py --check   # exit 1 when the committed file is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "fraud-detection-service")]

from fraud_detection.rules.config import schema_text  # noqa: E402

SCHEMA_FILE = REPO / "fraud-detection-service" / "rules.schema.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args()
    wanted = schema_text()
    if args.check:
        if SCHEMA_FILE.read_text(encoding="utf-8") != wanted:
            print(f"{SCHEMA_FILE} is stale: run python tools/rules_schema.py", file=sys.stderr)
            return 1
        print(f"{SCHEMA_FILE} is up to date")
        return 0
    SCHEMA_FILE.write_text(wanted, encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
