"""The services' JSON log lines for a person, followed live (``tools/devstack.py up``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TextIO

_COLOURS = {"transaction-service": "36", "fraud-detection-service": "35", "alert-service": "33"}
_LEVEL_COLOURS = {"WARNING": "33", "ERROR": "31", "CRITICAL": "31;1"}
_PLAIN_FIELDS = {"time", "level", "logger", "message", "service", "taskName"}


def readable(line: str, source: str, *, colour: bool = False) -> str:
    """One service log line for a person: JSON lines become ``time LEVEL logger: message
    key=value ...``; anything else (gunicorn's own lines) is shown as it is."""

    def paint(text: str, code: str | None) -> str:
        return f"\033[{code}m{text}\033[0m" if colour and code else text

    prefix = paint(f"{source:<23}", _COLOURS.get(source))
    try:
        record = json.loads(line)
    except ValueError:
        return f"{prefix} {line}"
    if not isinstance(record, dict):
        return f"{prefix} {line}"
    when = str(record.get("time", ""))[11:23] or str(record.get("time", ""))
    level = str(record.get("level", ""))
    extras = " ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in record.items()
        if key not in _PLAIN_FIELDS and key != "exc_info"
    )
    text = f"{prefix} {when} {paint(f'{level:<7}', _LEVEL_COLOURS.get(level))} "
    text += f"{record.get('logger', '')}: {record.get('message', '')}"
    if extras:
        text += f"  {extras}"
    if record.get("exc_info"):
        text += "\n" + str(record["exc_info"])
    return text


class LogFollower:
    """Follows the services' log files (like ``tail -F``) and prints readable lines."""

    def __init__(self, paths: Mapping[str, Path], out: TextIO, *, colour: bool) -> None:
        self._paths = dict(paths)
        self._out = out
        self._colour = colour
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        positions = {name: self._size(path) for name, path in self._paths.items()}
        while True:
            stopping = self._stop.is_set()  # one more pass after stop: the last lines
            for name, path in self._paths.items():
                for line in self._new_lines(path, positions, name):
                    # one write per line: lines of other threads never splice into it
                    self._out.write(readable(line, name, colour=self._colour) + "\n")
                    self._out.flush()
            if stopping:
                return
            self._stop.wait(0.2)

    @staticmethod
    def _size(path: Path) -> int:
        """Where following starts: the end of what earlier runs wrote."""
        try:
            return path.stat().st_size
        except OSError:
            return 0

    @staticmethod
    def _new_lines(path: Path, positions: dict[str, int], name: str) -> Iterator[str]:
        try:
            with path.open("rb") as handle:
                handle.seek(positions[name])
                data = handle.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # only whole lines; the rest waits for its newline
        positions[name] += end
        for raw in data[:end].splitlines():
            if raw.strip():
                yield raw.decode("utf-8", errors="replace")
