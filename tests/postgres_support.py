"""A real, throwaway PostgreSQL server for the tests: initdb and pg_ctl in a temporary folder.

The server listens on loopback at a free port, trusts local connections (it lives only as long
as the test session, in a folder nobody else uses), and is stopped at the end. PostgreSQL
refuses to run as root, so under root it runs as the `postgres` user that Debian's package
creates. Missing binaries fail the test with the fix, never skip it: CI installs them.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

MISSING = ("PostgreSQL server binaries (initdb, pg_ctl) not found: install them with "
           "`apt-get install postgresql` (or run .ci/run, which does)")


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: Debian's versioned folder, else the PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One server in its own folder; `database()` makes a fresh, empty database and returns its URL."""

    def __init__(self) -> None:
        binaries = server_binaries()
        if binaries is None:
            raise RuntimeError(MISSING)
        self.bin = binaries
        self.root = Path(tempfile.mkdtemp(prefix="evolve-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses root: its files and process belong to `postgres`
            try:
                shutil.chown(self.root, "postgres", "postgres")
            except LookupError:
                raise RuntimeError("no `postgres` user to run the test server as (root is refused): "
                                   "`apt-get install postgresql` creates it") from None
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._names = itertools.count(1)
        self._run(self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        options = f"-k {self.root} -c listen_addresses=127.0.0.1 -p {self.port} -c fsync=off"
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-o", options, "-w",
                  "start")

    def _run(self, *command: object) -> None:
        result = subprocess.run([*self.as_user, *map(str, command)], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stderr.strip() or result.stdout.strip()}")

    def url(self, database: str = "postgres") -> str:
        return self.url_for("postgres", database)

    def database(self) -> str:
        """A fresh, empty database's URL (user postgres, no password: loopback is trusted)."""
        return self.url(self.create_database())

    def create_database(self) -> str:
        name = f"test_{os.getpid()}_{next(self._names)}"
        self._run(self.bin / "createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", name)
        return name

    def user_with_password(self, user: str, password: str) -> None:
        """A role that must give its password over TCP (SCRAM), so a test can tell whether one was sent."""
        hba = self.data / "pg_hba.conf"
        rule = f"host all {user} 127.0.0.1/32 scram-sha-256\n"  # first match wins: ahead of the trust rules
        hba.write_text(rule + hba.read_text())  # rewritten in place: the file keeps its owner
        self._run(self.bin / "psql", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "-d", "postgres",
                  "-v", "ON_ERROR_STOP=1", "-c", f"CREATE ROLE {user} LOGIN SUPERUSER PASSWORD '{password}'")
        self._run(self.bin / "pg_ctl", "-D", self.data, "reload")

    def url_for(self, user: str, database: str, password: str | None = None) -> str:
        credentials = user if password is None else f"{user}:{password}"
        return f"postgresql+psycopg://{credentials}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        try:
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
