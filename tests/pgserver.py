"""A real, throwaway PostgreSQL server for the tests and the benchmarks.

    server = PgServer()            # durable=False: fsync/synchronous_commit/full_page_writes off
    server.start()                 # initdb + pg_ctl start on 127.0.0.1:<free port>
    dsn = server.create_database() # postgresql://postgres@127.0.0.1:PORT/<fresh empty db>
    server.stop()                  # pg_ctl stop -m fast (then immediate), directory removed

The binaries are found with `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin,
else `initdb` on PATH (VIGIL_PG_BINDIR, when set, is the only place looked at). initdb and
postgres refuse to run as root: as root the server runs as an unprivileged system user
(`vigilpg`, created once) and its directory is a fresh /tmp/vigil-pg-* owned by that user
(pytest's tmp_path is 0700 root, which that user cannot reach).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import glob
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_USER = "vigilpg"
NOT_INSTALLED = "PostgreSQL is not installed (apt-get install postgresql)"


class PgNotInstalled(RuntimeError):
    pass


class PgStartError(RuntimeError):
    pass


def _has_server(bindir: str | os.PathLike | None) -> bool:
    return bool(bindir) and all(os.access(os.path.join(bindir, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres"))


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/<ver>/bin: 9.6 < 15 < 16
    ver = Path(path).parent.name
    return tuple(int(x) for x in re.findall(r"\d+", ver)) or (0,)


def find_bindir() -> Path:
    """The directory holding initdb/pg_ctl/postgres, or PgNotInstalled."""
    override = os.environ.get("VIGIL_PG_BINDIR")
    if override is not None:
        if _has_server(override):
            return Path(override)
        raise PgNotInstalled(f"{NOT_INSTALLED}; VIGIL_PG_BINDIR={override!r} has no initdb/pg_ctl/postgres")
    candidates: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0:
                candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates += [os.path.dirname(initdb), os.path.dirname(os.path.realpath(initdb))]
    for c in candidates:
        if _has_server(c):
            return Path(c)
    raise PgNotInstalled(NOT_INSTALLED)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_pg_user() -> tuple[int, int]:
    """Create the unprivileged system user once (idempotent, safe against concurrent sessions)."""
    with open("/tmp/vigil-pg-useradd.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for _ in range(50):
            try:
                pw = pwd.getpwnam(PG_USER)
                return pw.pw_uid, pw.pw_gid
            except KeyError:
                pass
            out = subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                                  "--shell", "/usr/sbin/nologin", PG_USER], capture_output=True, text=True)
            if out.returncode not in (0, 9):  # 9: already exists (made by someone else meanwhile)
                last = out.stderr.strip()
                time.sleep(0.1)  # e.g. /etc/passwd locked by another tool
            else:
                last = ""
        raise PgStartError(f"could not create the system user {PG_USER!r} to run PostgreSQL as: {last}")


class PgServer:
    def __init__(self, *, durable: bool = False, max_connections: int = 200,
                 settings: dict[str, str] | None = None, start_timeout: float = 60.0) -> None:
        self.durable = durable
        self.max_connections = max_connections
        self.settings = dict(settings or {})
        self.start_timeout = start_timeout
        self.bindir: Path | None = None
        self.base: Path | None = None
        self.data: Path | None = None
        self.log: Path | None = None
        self.port: int | None = None
        self._run_as: tuple[int, int] | None = None  # (uid, gid) when started as root
        self._names = itertools.count(1)
        self._atexit = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, base_dir: str | os.PathLike | None = None) -> "PgServer":
        """initdb + start; base_dir is the parent of the server's own fresh directory (default
        /tmp; as root it must be reachable by the unprivileged user, else /tmp is used)."""
        if self.base is not None:
            raise RuntimeError("already started")
        self.bindir = find_bindir()
        parent = Path(base_dir) if base_dir is not None else Path("/tmp")
        if os.geteuid() == 0:
            self._run_as = _ensure_pg_user()
            if not _reachable_by_others(parent):
                parent = Path("/tmp")
        parent.mkdir(parents=True, exist_ok=True)
        self.base = Path(tempfile.mkdtemp(prefix="vigil-pg-", dir=parent))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        if self._run_as:
            os.chown(self.base, *self._run_as)
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        try:
            self._initdb()
            self._configure()
            self._start_postmaster()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        base, self.base = self.base, None
        if base is None:
            return
        data = base / "data"
        if (data / "postmaster.pid").exists():
            for mode in ("fast", "immediate"):
                try:
                    out = self._run([str(self.bindir / "pg_ctl"), "stop", "-D", str(data), "-m", mode, "-w", "-t", "30"],
                                    timeout=40)
                    if out.returncode == 0:
                        break
                except subprocess.TimeoutExpired:
                    pass
            else:
                self._kill_postmaster(data)
        shutil.rmtree(base, ignore_errors=True)
        self.port = None

    def halt(self) -> None:
        """Stop the server as a crash would (immediate: no checkpoint), keeping its data."""
        self._run([str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30"],
                  timeout=40)

    def resume(self) -> None:
        """Start a halted server again, on the same port (clients reconnect to the same DSN)."""
        out = self._run([str(self.bindir / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log),
                         "-w", "-t", str(int(self.start_timeout)), "-o", f"-p {self.port}"],
                        timeout=self.start_timeout + 10)
        if out.returncode != 0:
            raise PgStartError(f"pg_ctl start failed: {out.stdout}{out.stderr}\n{self.log_tail()}")
        self._wait_ready()

    def __enter__(self) -> "PgServer":
        return self if self.base is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- use ---------------------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A DSN to a fresh, empty, uniquely named database."""
        import psycopg
        from psycopg import sql

        name = name or f"vigil_{next(self._names)}_{secrets.token_hex(4)}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def drop_database(self, dsn_or_name: str) -> None:
        """Best effort: drop it, disconnecting whoever is still connected (PostgreSQL >= 13)."""
        import psycopg
        from psycopg import sql

        name = dsn_or_name.rsplit("/", 1)[-1]
        with contextlib.suppress(psycopg.Error, RuntimeError), \
                psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])  # type: ignore[union-attr]
        except (OSError, AttributeError):
            return "(no server log)"

    # -- internals ---------------------------------------------------------------------------

    def _run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        kw: dict = {}
        if self._run_as:
            uid, gid = self._run_as
            kw = dict(user=uid, group=gid, extra_groups=[])
            env.update(HOME=str(self.base), USER=PG_USER, LOGNAME=PG_USER)
        return subprocess.run(argv, cwd=self.base, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, **kw)

    def _initdb(self) -> None:
        out = self._run([str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                         "-E", "UTF8", "--locale=C"] +
                        ([] if self.durable else ["--no-sync"]))
        if out.returncode != 0:
            raise PgStartError(f"initdb failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")

    def _configure(self) -> None:
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.base}'",
            "max_connections": str(self.max_connections),
            "logging_collector": "off",
            "log_min_messages": "warning",
            "dynamic_shared_memory_type": "mmap" if not Path("/dev/shm").is_dir() else "posix",
        }
        if not self.durable:
            conf.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        conf.update(self.settings)
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n# vigil tests (tests/pgserver.py)\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")

    def _start_postmaster(self) -> None:
        # A free port is only free until someone else binds it (a second pytest session picks
        # ports too): on "address in use" pick another and try again.
        for attempt in range(5):
            self.port = _free_port()
            out = self._run([str(self.bindir / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log),
                             "-w", "-t", str(int(self.start_timeout)), "-o", f"-p {self.port}"],
                            timeout=self.start_timeout + 10)
            if out.returncode == 0:
                return
            tail = self.log_tail()
            if "could not bind" in tail or "already in use" in tail:
                continue
            raise PgStartError(f"pg_ctl start failed ({out.returncode}): {out.stdout}{out.stderr}\n"
                               f"--- server log tail ({self.log}) ---\n{tail}")
        raise PgStartError(f"could not find a free port after 5 tries\n--- server log tail ---\n{self.log_tail()}")

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as e:
                if time.monotonic() > deadline:
                    raise PgStartError(f"PostgreSQL on port {self.port} did not accept connections within "
                                       f"{self.start_timeout:.0f} s: {e}\n--- server log tail ({self.log}) ---\n"
                                       f"{self.log_tail()}") from e
                time.sleep(0.05)

    def _kill_postmaster(self, data: Path) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)


def _reachable_by_others(path: Path) -> bool:
    """Can an unrelated user traverse every directory down to `path` (o+x)? tmp_path is not."""
    p = path.resolve()
    for d in [p, *p.parents]:
        if d.exists() and not (d.stat().st_mode & 0o001):
            return False
    return True
