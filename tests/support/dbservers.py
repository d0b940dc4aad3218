"""Throwaway PostgreSQL and MariaDB servers for the test suite.

Each server is started by the tests themselves, on 127.0.0.1 with a random
free port (plus a unix socket), from a fresh data directory under a caller
supplied ``base_dir``. The binaries come from Debian's packages, installed by
``.ci/install-db-servers.sh``.

Typical use from a pytest fixture::

    server = start_postgresql(tmp_path_factory.mktemp("pg"))
    try:
        yield server            # server.url -> the ``ovh_credit`` database
    finally:
        server.stop()

    url = create_database(server, "test_something")   # a fresh extra database

URLs are SQLAlchemy 2 URL strings: ``postgresql+psycopg://...`` and
``mysql+pymysql://...``. Connecting (and :func:`create_database`) needs the
``psycopg`` / ``pymysql`` drivers; they are imported lazily, so importing this
module needs nothing beyond the standard library.

When running as root, PostgreSQL (which refuses to run as root) is run as the
``postgres`` system user: its data directory is chown-ed to that user, and
missing search (``o+x``) permission is added to ``base_dir``'s ancestors when
they lack it (pytest's ``/tmp/pytest-of-root`` is mode 0700). MariaDB runs as
root with ``--user=root``.

Servers get ``PR_SET_PDEATHSIG`` so that they die with the process (thread)
that started them, even if ``stop()`` is never reached.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote

__all__ = [
    "DEFAULT_DATABASE",
    "DatabaseServer",
    "DatabaseServerError",
    "create_database",
    "drop_database",
    "mariadb_available",
    "postgresql_available",
    "start_mariadb",
    "start_postgresql",
]

DEFAULT_DATABASE = "ovh_credit"
#: Application (non-admin) role/user created on both servers.
APP_USER = "ovh"
APP_PASSWORD = "ovh"
HOST = "127.0.0.1"
#: Seconds to wait for a server to accept connections (env override).
START_TIMEOUT = float(os.environ.get("OVH_TEST_DB_START_TIMEOUT", "60"))

_PORT_ATTEMPTS = 3
# sockaddr_un.sun_path is 108 bytes including the NUL.
_MAX_SOCKET_PATH = 100
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

Kind = Literal["postgresql", "mariadb"]


class DatabaseServerError(RuntimeError):
    """A test database server could not be found, initialised or started."""


@dataclass
class DatabaseServer:
    """A running throwaway server. ``url`` points at the ``ovh_credit`` database."""

    kind: Kind
    host: str
    port: int
    socket_path: Path
    data_dir: Path
    log_path: Path
    database: str
    user: str
    password: str
    admin_user: str
    process: subprocess.Popen[bytes] = field(repr=False)
    startup_seconds: float = 0.0
    _cleanup_dirs: list[Path] = field(default_factory=list, repr=False)

    # -- URLs ---------------------------------------------------------------
    @property
    def driver(self) -> str:
        return "postgresql+psycopg" if self.kind == "postgresql" else "mysql+pymysql"

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL of the application user for ``database``."""
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"{self.driver}://{auth}@{self.host}:{self.port}/{database}"

    def admin_url_for(self, database: str | None = None) -> str:
        """SQLAlchemy URL of the superuser (``postgres`` / MariaDB ``root``)."""
        if database is None:
            database = "postgres" if self.kind == "postgresql" else ""
        return f"{self.driver}://{self.admin_user}@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    @property
    def admin_url(self) -> str:
        return self.admin_url_for()

    # -- lifecycle ----------------------------------------------------------
    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def stop(self, timeout: float = 10.0) -> None:
        """Kill the server and wait for it. Data files are left in place."""
        _terminate(self.process, self.kind, timeout)
        for d in self._cleanup_dirs:  # only short socket dirs made outside base_dir
            shutil.rmtree(d, ignore_errors=True)
        self._cleanup_dirs.clear()

    def __enter__(self) -> DatabaseServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------
# public helpers
# ---------------------------------------------------------------------------


def postgresql_available() -> bool:
    try:
        _pg_bindir()
    except DatabaseServerError:
        return False
    return True


def mariadb_available() -> bool:
    try:
        _mariadb_binaries()
    except DatabaseServerError:
        return False
    return True


def create_database(server: DatabaseServer, name: str) -> str:
    """(Re)create an empty database ``name`` owned by/granted to the app user.

    An existing database of that name is dropped first, so the result is
    always fresh. Returns its SQLAlchemy URL (app user). Costs a few ms on
    MariaDB and a few tens of ms on PostgreSQL.
    """
    _check_name(name)
    if server.kind == "postgresql":
        _pg_admin_execute(
            server,
            [
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                # FILE_COPY's checkpoints are nearly free with fsync=off; it
                # measured slightly faster than PG15's default WAL_LOG
                # (~42 vs ~47 ms per CREATE DATABASE).
                f'CREATE DATABASE "{name}" OWNER "{server.user}" STRATEGY FILE_COPY',
            ],
        )
    else:
        _mariadb_admin_execute(
            server,
            [
                f"DROP DATABASE IF EXISTS `{name}`",
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4",
                f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{server.user}'@'{server.host}'",
            ],
        )
    return server.url_for(name)


def drop_database(server: DatabaseServer, name: str) -> None:
    """Drop database ``name`` if it exists (terminating its connections on PG)."""
    _check_name(name)
    if server.kind == "postgresql":
        _pg_admin_execute(server, [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'])
    else:
        _mariadb_admin_execute(server, [f"DROP DATABASE IF EXISTS `{name}`"])


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

_PG_CONF = """\
listen_addresses = '{host}'
port = {port}
unix_socket_directories = '{socket_dir}'
max_connections = 200
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
checkpoint_timeout = 1h
max_wal_size = 1GB
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] '
"""


def _pg_bindir() -> Path:
    candidates = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: _version_key(p.parent.name),
        reverse=True,
    )
    for bindir in candidates:
        if (bindir / "postgres").is_file():
            return bindir
    initdb = shutil.which("initdb")
    if initdb:
        bindir = Path(initdb).resolve().parent
        if (bindir / "postgres").is_file():
            return bindir
    raise DatabaseServerError(
        "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin); "
        "run .ci/install-db-servers.sh"
    )


def start_postgresql(base_dir: Path) -> DatabaseServer:
    """Init a cluster in ``base_dir/pgdata``, start it and create ``ovh_credit``."""
    t0 = time.monotonic()
    bindir = _pg_bindir()
    base_dir = Path(base_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    data_dir = base_dir / "pgdata"
    log_path = base_dir / "postgresql.log"
    socket_dir, cleanup = _socket_dir(base_dir, ".s.PGSQL.65535")

    run_as: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            run_as = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise DatabaseServerError("running as root but there is no 'postgres' user") from exc
        make_traversable(base_dir)
        os.chown(socket_dir, run_as.pw_uid, run_as.pw_gid)

    if data_dir.exists():
        raise DatabaseServerError(f"{data_dir} already exists; use a fresh base_dir")
    data_dir.mkdir(mode=0o700)
    log_path.touch()
    if run_as is not None:
        os.chown(data_dir, run_as.pw_uid, run_as.pw_gid)
        os.chown(log_path, run_as.pw_uid, run_as.pw_gid)

    env = _pg_env(run_as)
    init = subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data_dir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            "--no-instructions",
        ],
        env=env,
        cwd=data_dir,
        user=run_as.pw_uid if run_as else None,
        group=run_as.pw_gid if run_as else None,
        extra_groups=[] if run_as else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    if init.returncode != 0:
        raise DatabaseServerError(
            f"initdb failed (exit {init.returncode}):\n{init.stdout.decode(errors='replace')}"
        )

    def launch(port: int) -> subprocess.Popen[bytes]:
        conf = _PG_CONF.format(host=HOST, port=port, socket_dir=socket_dir)
        (data_dir / "postgresql.auto.conf").write_text(conf)
        if run_as is not None:
            os.chown(data_dir / "postgresql.auto.conf", run_as.pw_uid, run_as.pw_gid)
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                [*_die_with_parent("QUIT"), str(bindir / "postgres"), "-D", str(data_dir)],
                env=env,
                cwd=data_dir,
                user=run_as.pw_uid if run_as else None,
                group=run_as.pw_gid if run_as else None,
                extra_groups=[] if run_as else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def probe(port: int) -> None:
        import psycopg

        with psycopg.connect(
            host=HOST, port=port, user="postgres", dbname="postgres", connect_timeout=2
        ):
            pass

    process, port = _launch_and_wait("postgresql", launch, probe, log_path)
    server = DatabaseServer(
        kind="postgresql",
        host=HOST,
        port=port,
        socket_path=socket_dir / f".s.PGSQL.{port}",
        data_dir=data_dir,
        log_path=log_path,
        database=DEFAULT_DATABASE,
        user=APP_USER,
        password=APP_PASSWORD,
        admin_user="postgres",
        process=process,
        _cleanup_dirs=cleanup,
    )
    try:
        _pg_admin_execute(server, [f"CREATE ROLE \"{APP_USER}\" LOGIN PASSWORD '{APP_PASSWORD}'"])
        create_database(server, DEFAULT_DATABASE)
    except BaseException:
        server.stop()
        raise
    server.startup_seconds = time.monotonic() - t0
    return server


def _pg_env(run_as: pwd.struct_passwd | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
    }
    if run_as is not None:
        env.update(HOME=run_as.pw_dir, USER=run_as.pw_name, LOGNAME=run_as.pw_name)
    return env


def _pg_admin_execute(server: DatabaseServer, statements: Sequence[str]) -> None:
    import psycopg

    with psycopg.connect(
        host=server.host,
        port=server.port,
        user=server.admin_user,
        dbname="postgres",
        autocommit=True,
        connect_timeout=10,
    ) as conn:
        for stmt in statements:
            conn.execute(stmt.encode())


# ---------------------------------------------------------------------------
# MariaDB
# ---------------------------------------------------------------------------

_MARIADB_CNF = """\
[client-server]
socket = {socket}
port = {port}

[mariadbd]
datadir = {datadir}
pid-file = {base_dir}/mariadbd.pid
log-error = {log}
bind-address = {host}
{user_line}
skip-name-resolve
skip-log-bin
skip-host-cache
default-storage-engine = InnoDB
default-tmp-storage-engine = InnoDB
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
default-time-zone = '+00:00'
max-connections = 200
table-open-cache = 400
innodb-lock-wait-timeout = 10
innodb-buffer-pool-size = 32M
innodb-log-file-size = 16M
innodb-flush-log-at-trx-commit = 2
innodb-doublewrite = 0
innodb-use-native-aio = 0
performance-schema = OFF
"""


def _mariadb_binaries() -> tuple[Path, Path]:
    server: str | None = None
    for name in ("mariadbd", "mysqld"):
        server = shutil.which(name) or next(
            (p for p in (f"/usr/sbin/{name}", f"/usr/libexec/{name}") if os.access(p, os.X_OK)),
            None,
        )
        if server:
            break
    install_db = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not server or not install_db:
        raise DatabaseServerError(
            "MariaDB server binaries not found (mariadbd, mariadb-install-db); "
            "run .ci/install-db-servers.sh"
        )
    return Path(server), Path(install_db)


def start_mariadb(base_dir: Path) -> DatabaseServer:
    """Init a datadir in ``base_dir/mariadb-data``, start it and create ``ovh_credit``."""
    t0 = time.monotonic()
    mariadbd, install_db = _mariadb_binaries()
    base_dir = Path(base_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    data_dir = base_dir / "mariadb-data"
    log_path = base_dir / "mariadb.log"
    cnf_path = base_dir / "my.cnf"
    socket_dir, cleanup = _socket_dir(base_dir, "mariadbd.sock")
    socket_path = socket_dir / "mariadbd.sock"
    is_root = os.geteuid() == 0
    if data_dir.exists():
        raise DatabaseServerError(f"{data_dir} already exists; use a fresh base_dir")
    log_path.touch()

    def write_cnf(port: int) -> None:
        cnf_path.write_text(
            _MARIADB_CNF.format(
                socket=socket_path,
                port=port,
                datadir=data_dir,
                base_dir=base_dir,
                log=log_path,
                host=HOST,
                user_line="user = root" if is_root else "",
            )
        )

    write_cnf(0)
    init = subprocess.run(
        [
            str(install_db),
            f"--defaults-file={cnf_path}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ],
        env=_plain_env(),
        cwd=base_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    if init.returncode != 0:
        raise DatabaseServerError(
            f"mariadb-install-db failed (exit {init.returncode}):\n"
            f"{init.stdout.decode(errors='replace')[-4000:]}\n{_tail(log_path)}"
        )

    def launch(port: int) -> subprocess.Popen[bytes]:
        write_cnf(port)
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                [
                    *_die_with_parent("KILL"),
                    str(mariadbd),
                    f"--defaults-file={cnf_path}",
                    # Not in my.cnf: it would break mariadb-install-db's
                    # creation of the (Aria) system tables.
                    "--enforce-storage-engine=InnoDB",
                ],
                env=_plain_env(),
                cwd=base_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def probe(port: int) -> None:
        import pymysql  # type: ignore[import-untyped]

        # read/write timeouts too: something else listening on the port
        # (lost race) might accept but never send a greeting.
        pymysql.connect(
            host=HOST,
            port=port,
            user="root",
            connect_timeout=2,
            read_timeout=2,
            write_timeout=2,
        ).close()

    process, port = _launch_and_wait("mariadb", launch, probe, log_path)
    server = DatabaseServer(
        kind="mariadb",
        host=HOST,
        port=port,
        socket_path=socket_path,
        data_dir=data_dir,
        log_path=log_path,
        database=DEFAULT_DATABASE,
        user=APP_USER,
        password=APP_PASSWORD,
        admin_user="root",
        process=process,
        _cleanup_dirs=cleanup,
    )
    try:
        _mariadb_admin_execute(
            server,
            [
                f"CREATE USER '{APP_USER}'@'{HOST}' IDENTIFIED BY '{APP_PASSWORD}'",
                # Drop the anonymous and hostname-based accounts that
                # mariadb-install-db creates (they only cause log warnings
                # under skip-name-resolve).
                "DELETE FROM mysql.global_priv WHERE User = '' "
                "OR Host NOT IN ('localhost', '127.0.0.1', '::1')",
                "DELETE FROM mysql.proxies_priv "
                "WHERE Host NOT IN ('localhost', '127.0.0.1', '::1')",
                "FLUSH PRIVILEGES",
            ],
        )
        create_database(server, DEFAULT_DATABASE)
    except BaseException:
        server.stop()
        raise
    server.startup_seconds = time.monotonic() - t0
    return server


def _mariadb_admin_execute(server: DatabaseServer, statements: Sequence[str]) -> None:
    import pymysql  # type: ignore[import-untyped]

    conn = pymysql.connect(
        host=server.host,
        port=server.port,
        user=server.admin_user,
        connect_timeout=10,
        read_timeout=120,
        write_timeout=120,
        autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            # DROP DATABASE waits for metadata locks held by open
            # transactions; fail instead of hanging for the default year.
            cur.execute("SET SESSION lock_wait_timeout = 30")
            for stmt in statements:
                cur.execute(stmt)
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# shared machinery
# ---------------------------------------------------------------------------

_PORT_IN_USE = re.compile(r"address already in use|could not bind|can't start server: bind", re.I)


def _launch_and_wait(
    kind: Kind,
    launch: Callable[[int], subprocess.Popen[bytes]],
    probe: Callable[[int], None],
    log_path: Path,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server on a free port and wait until ``probe`` succeeds.

    Retries with another port if the chosen one was taken in the meantime.
    """
    for attempt in range(_PORT_ATTEMPTS):
        port = _free_port()
        log_offset = log_path.stat().st_size if log_path.exists() else 0
        process = launch(port)
        deadline = time.monotonic() + START_TIMEOUT
        last_error: BaseException | None = None
        while True:
            if process.poll() is not None:
                new_log = _read_from(log_path, log_offset)
                if _PORT_IN_USE.search(new_log) and attempt + 1 < _PORT_ATTEMPTS:
                    break  # retry with another port
                raise DatabaseServerError(
                    f"{kind} server exited with code {process.returncode} during startup "
                    f"(port {port}); log tail of {log_path}:\n{_tail(log_path)}"
                )
            try:
                probe(port)
                return process, port
            except Exception as exc:  # any connect failure means "not yet"
                last_error = exc
            if time.monotonic() > deadline:
                _terminate(process, kind, 5.0)
                raise DatabaseServerError(
                    f"{kind} server did not accept connections on {HOST}:{port} within "
                    f"{START_TIMEOUT:.0f}s (last error: {last_error!r}); "
                    f"log tail of {log_path}:\n{_tail(log_path)}"
                )
            time.sleep(0.05)
    raise AssertionError("unreachable")


def _terminate(process: subprocess.Popen[bytes], kind: Kind, timeout: float) -> None:
    if process.poll() is not None:
        return
    # PostgreSQL: SIGQUIT = immediate shutdown (postmaster kills its backends).
    # MariaDB: throwaway data, a plain kill is the fastest.
    sig = signal.SIGQUIT if kind == "postgresql" else signal.SIGKILL
    try:
        process.send_signal(sig)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _socket_dir(base_dir: Path, socket_name: str) -> tuple[Path, list[Path]]:
    """A directory for the unix socket: base_dir/run, or a short one in /tmp
    when the socket path would exceed the sun_path limit (returned for cleanup)."""
    candidate = base_dir / "run"
    if len(str(candidate / socket_name)) <= _MAX_SOCKET_PATH:
        candidate.mkdir(exist_ok=True)
        return candidate, []
    short = Path(tempfile.mkdtemp(prefix="ovhdb-", dir="/tmp"))
    short.chmod(0o755)
    return short, [short]


def make_traversable(path: Path) -> None:
    """Let other users (``postgres``, Apache's ``www-data``) traverse every ancestor of ``path``.

    Only adds the search bit for "others" where it is missing (read is not
    granted, so directory listings stay private).
    """
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & 0o001:
            os.chmod(p, (mode & 0o7777) | 0o001)


def _die_with_parent(signame: str) -> list[str]:
    """Command prefix delivering SIG``signame`` to the server when the thread
    that spawned it dies (``PR_SET_PDEATHSIG`` via util-linux ``setpriv``).

    setpriv runs after subprocess's own setuid() (``user=``), so the setting
    is not cleared by the credential change. Without setpriv: no prefix.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, f"--pdeathsig={signame}", "--"] if setpriv else []


def _plain_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYSQL", "MARIADB"))}
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8", TZ="UTC")
    return env


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid database name {name!r}: use [a-z_][a-z0-9_]{{0,62}}")


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)) or (0,)


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_bytes().decode(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])
