"""The rules in force in one detector process, reloaded without a restart.

Three ways in, one path: the file changes (checked every ``poll_seconds``, so within
about a second), the process gets SIGHUP (the gunicorn master passes its SIGHUP on to
the workers), or ``POST /api/v1/rules/reload``. Each reads the file and, when it
validates, swaps the whole `RuleSet` at once; the consumer loop asks for `current()`
once per batch, so a batch is never judged by two versions. A file that does not
validate is refused with its problems (logged once per content) and the last good
rules stay. Every process watches the same file, so all of them converge on its version.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fraud_detection.rules import RuleSet
from fraud_detection.rules.config import RulesInvalid, load_rules, version_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reload:
    """What a reload did."""

    version: str
    changed: bool
    loaded_at: datetime


class RulesSource:
    """Holds the current `RuleSet` of one file; see the module docstring."""

    def __init__(self, path: Path, *, poll_seconds: float = 1.0) -> None:
        self._path = path
        self._poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._rules = load_rules(path)  # a bad file at start is an error of its own
        self._loaded_at = datetime.now(UTC)
        self._refused: str | None = None  # version of the last refused content
        self._stopping = threading.Event()
        self._reload_requested = threading.Event()
        log.info("rules loaded", extra={"rules_version": self._rules.version, "file": str(path)})

    @property
    def path(self) -> Path:
        return self._path

    def current(self) -> RuleSet:
        return self._rules

    @property
    def loaded_at(self) -> datetime:
        return self._loaded_at

    def reload(self) -> Reload:
        """Read the file again; raises `RulesInvalid` (the current rules stay)."""
        with self._lock:
            try:
                rules = load_rules(self._path)
            except RulesInvalid as invalid:
                self._log_refusal(invalid)
                raise
            self._refused = None
            changed = rules.version != self._rules.version
            if changed:
                previous = self._rules.version
                self._rules = rules
                self._loaded_at = datetime.now(UTC)
                log.warning(
                    "rules reloaded",
                    extra={"rules_version": rules.version, "previous_version": previous},
                )
            return Reload(self._rules.version, changed, self._loaded_at)

    def request_reload(self) -> None:
        """Reload soon, from the watcher's thread (safe to call in a signal handler)."""
        self._reload_requested.set()

    # -- the watcher (a `fraud_common.background.BackgroundThread` target) -----------

    def run(self) -> None:
        while not self._stopping.is_set():
            self._reload_requested.wait(self._poll_seconds)
            if self._stopping.is_set():
                return
            requested = self._reload_requested.is_set()
            self._reload_requested.clear()
            if requested or self._file_changed():
                with contextlib.suppress(RulesInvalid):  # logged; the current rules stay
                    self.reload()

    def stop(self) -> None:
        self._stopping.set()
        self._reload_requested.set()

    def _file_changed(self) -> bool:
        try:
            content = self._path.read_bytes()
        except OSError:
            return self._refused != "unreadable"
        version = version_of(content)
        return version != self._rules.version and version != self._refused

    def _log_refusal(self, invalid: RulesInvalid) -> None:
        try:
            refused = version_of(self._path.read_bytes())
        except OSError:
            refused = "unreadable"
        if refused != self._refused:
            log.error(
                "rules file refused; the previous rules stay in force",
                extra={
                    "rules_version": self._rules.version,
                    "problems": [str(p) for p in invalid.problems],
                },
            )
        self._refused = refused
