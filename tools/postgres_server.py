"""A real PostgreSQL for the local stack and the tests: ``initdb`` into a directory of
its own, ``postgres`` on a free loopback port (socket in that directory too), stopped
only by whoever started it. The machine's own server (5432) is never touched.

The postmaster runs in the foreground as this object's child (as `RedisServer` does),
so the stack's supervisor sees it die and can start it again on the same port and
data; `stop` is ``pg_ctl stop -m fast`` (SIGINT: open sessions are ended, not awaited).
PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` user
(``setpriv``, which execs, so the pid is the server's), with its data directory and
socket in a temporary directory of that user's (the log directory, e.g. under pytest's
root-only temporary tree, may be out of its reach); the log stays in ``log_dir``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tools.local_services import _Process

DATABASE = "archive"
SUPERUSER = "postgres"


def postgres_bin_dir() -> Path:
    """``PG_BIN`` when set, else Debian's PostgreSQL 15, else the directory of ``pg_ctl``."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    debian = Path("/usr/lib/postgresql/15/bin")
    if (debian / "postgres").exists():
        return debian
    found = shutil.which("pg_ctl")
    if found is None:
        raise FileNotFoundError("PostgreSQL not found: apt-get install postgresql, or set PG_BIN")
    return Path(found).parent


class PostgresServer(_Process):
    """``postgres`` on a free port with the database `DATABASE` created (trust auth on
    loopback only: a throwaway server for one stack or one test run)."""

    name = "postgres"

    def __init__(self, log_dir: Path | None = None, *, fsync: bool = True) -> None:
        super().__init__(log_dir)
        self.fsync = fsync
        self.bin = postgres_bin_dir()
        self._run_as = _unprivileged_user()
        self.home = self.dir
        """Where the data directory and the socket live."""
        if self._run_as is not None:
            self.home = Path(tempfile.mkdtemp(prefix="postgres-data-"))
            os.chown(self.home, self._run_as.pw_uid, self._run_as.pw_gid)
        self.data = self.home / "data"

    @property
    def url(self) -> str:
        """The archive database's URL (``ARCHIVE_DATABASE_URL``)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def _as_user(self, argv: list[str]) -> list[str]:
        if self._run_as is None:
            return argv
        user = self._run_as.pw_name
        return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]

    def _initdb(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return  # started before: same data
        done = subprocess.run(
            self._as_user(
                [
                    str(self.bin / "initdb"),
                    "--pgdata", str(self.data),
                    "--username", SUPERUSER,
                    "--auth", "trust",
                    "--encoding", "UTF8",
                    "--no-locale",
                    "--no-sync",
                ]
            ),
            capture_output=True,
            cwd=self.home,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stderr.decode(errors='replace')[-2000:]}")

    def _command(self) -> list[str]:
        return self._as_user(
            [
                str(self.bin / "postgres"),
                "-D", str(self.data),
                "-p", str(self.port),
                "-k", str(self.home),
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"fsync={'on' if self.fsync else 'off'}",
            ]
        )  # fmt: skip

    def start(self, port: int | None = None, timeout: float = 60.0) -> PostgresServer:
        self._initdb()
        super().start(port, timeout)
        self._create_database()
        return self

    def _ready(self) -> bool:
        result = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
            capture_output=True,
        )
        return result.returncode == 0

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if exists is None:
                connection.execute(f"CREATE DATABASE {DATABASE}")

    def stop(self, timeout: float = 10.0) -> None:
        """``pg_ctl stop -m fast``: SIGINT, sessions ended, a clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        super().stop(timeout)

    def cleanup(self) -> None:
        super().cleanup()
        if self.home != self.dir:
            shutil.rmtree(self.home, ignore_errors=True)


def _unprivileged_user() -> pwd.struct_passwd | None:
    """None when not root; else the ``postgres`` user the server must run as."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError("running as root needs a 'postgres' user to run PostgreSQL") from exc
