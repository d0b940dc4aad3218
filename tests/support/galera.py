"""A throwaway 3-node MariaDB Galera cluster on loopback, for the clustered-ledger tier.

Each node is a ``mariadbd`` of its own, with its own client port, Galera
group-communication (gcomm) port, IST port, SST (rsync) port and data
directory, all on 127.0.0.1. The first node bootstraps the cluster
(``--wsrep-new-cluster``), the other two join it (a state snapshot transfer
by rsync, then IST when they rejoin). Binaries: Debian's ``mariadb-server``,
``galera-4`` and ``rsync``, installed by ``.ci/install-db-servers.sh``.

Typical use (the session fixture in ``tests/functional/test_galera.py``)::

    cluster = start_cluster(scratch / "galera")
    try:
        urls = cluster.create_database("t_something")   # one URL per node
        cluster.kill(2)        # SIGKILL node 2
        cluster.restart(2)     # rejoin (IST), wait until synced again
    finally:
        cluster.stop()

Every node is also a :class:`tests.support.dbservers.DatabaseServer` (``cluster.nodes[i]``),
so the helpers of that module (``create_database``, ``url_for``...) work on
any node. The nodes run as the ``mysql`` system user (when the tests run as
root): rsync SST runs the server's own scripts, which expect that, and it
mirrors production. As in ``tests/dbservers.py`` for PostgreSQL, the base
directory's ancestors get the search bit for others when they lack it.

Nodes get ``PR_SET_PDEATHSIG`` (SIGKILL): they die with the thread that
started them, even if :meth:`GaleraCluster.stop` is never reached. Start,
kill and restart them from the main thread.
"""

from __future__ import annotations

import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import dbservers, workload
from tests.support.dbservers import (
    APP_PASSWORD,
    APP_USER,
    DEFAULT_DATABASE,
    HOST,
    DatabaseServer,
    DatabaseServerError,
)
from tests.support.ledgers import VOUCHERS, Ledger, write_config

__all__ = ["GaleraCluster", "galera_available", "start_cluster"]

NODES = 3
CLUSTER_NAME = "ovh_credit_test"
#: Seconds a node has to start, join (SST included) and reach "Synced".
JOIN_TIMEOUT = float(os.environ.get("OVH_TEST_GALERA_JOIN_TIMEOUT", "120"))

_PROVIDER_CANDIDATES = (
    "/usr/lib/galera/libgalera_smm.so",
    "/usr/lib/galera-4/libgalera_smm.so",
    "/usr/lib/libgalera_smm.so",
    "/usr/lib64/galera-4/libgalera_smm.so",
    "/usr/lib64/galera/libgalera_smm.so",
)
_RECOVERED = re.compile(r"WSREP: Recovered position:\s*([0-9a-f-]{36}:-?\d+)")

# The options of ``tests/dbservers.py``'s MariaDB (fast, throwaway: no doublewrite,
# a log flush per second rather than per commit, a small buffer pool: three
# nodes share two cores and the memory), plus Galera's.
_CNF = """\
[client-server]
socket = {socket}
port = {port}

[mariadbd]
datadir = {datadir}
pid-file = {base_dir}/mariadbd.pid
log-error = {log}
bind-address = {host}
skip-name-resolve
skip-host-cache
default-storage-engine = InnoDB
default-tmp-storage-engine = InnoDB
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
default-time-zone = '+00:00'
max-connections = 300
table-open-cache = 400
innodb-lock-wait-timeout = 10
innodb-buffer-pool-size = 32M
innodb-log-file-size = 16M
innodb-flush-log-at-trx-commit = 2
innodb-doublewrite = 0
innodb-use-native-aio = 0
performance-schema = OFF
# Galera's requirements: row events, interleaved auto-increment locks.
binlog-format = ROW
innodb-autoinc-lock-mode = 2
{wsrep}"""

_WSREP = """\
wsrep-on = ON
wsrep-provider = {provider}
wsrep-cluster-name = {cluster_name}
wsrep-cluster-address = gcomm://{peers}
wsrep-node-name = node{index}
wsrep-node-address = {host}:{gcomm_port}
wsrep-node-incoming-address = {host}:{port}
wsrep-sst-method = rsync
wsrep-sst-receive-address = {host}:{sst_port}
# Reads wait until this node has applied every transaction committed anywhere
# in the cluster before they started (1 = SELECT, BEGIN). The tests write
# through one node and check through another (the ledger a race left, the
# audit); the plugin's voucher throttle counts reservations *after* its own
# committed, which only bounds the winners if that count sees the
# reservations other nodes committed first; and a decision read without a
# lock on another row than the one written (not certified) would otherwise
# rest on a stale view. Writes need no wait: certification catches them.
wsrep-sync-wait = 1
wsrep-slave-threads = 2
# Fast failure detection on loopback (defaults are for WANs: a killed node
# would stall every commit for 5-15 s): keepalive <= inactive check <=
# suspect <= inactive timeout, install timeout <= inactive timeout.
wsrep-provider-options = "base_host={host}; base_port={gcomm_port}; \
gmcast.listen_addr=tcp://{host}:{gcomm_port}; ist.recv_addr={host}:{ist_port}; \
gcache.size=64M; evs.keepalive_period=PT0.3S; evs.inactive_check_period=PT0.5S; \
evs.suspect_timeout=PT1.5S; evs.inactive_timeout=PT3S; evs.install_timeout=PT3S; \
evs.join_retrans_period=PT0.3S; pc.announce_timeout=PT1S"
"""


def galera_available() -> bool:
    """mariadbd, mariadb-install-db, the Galera provider and rsync are installed."""
    if not dbservers.mariadb_available() or shutil.which("rsync") is None:
        return False
    return _provider() is not None


def _provider() -> str | None:
    return next((p for p in _PROVIDER_CANDIDATES if os.path.isfile(p)), None)


@dataclass
class GaleraCluster:
    """Three running nodes; ``nodes[i]`` is node ``i`` as a DatabaseServer."""

    base_dir: Path
    nodes: list[DatabaseServer]
    startup_seconds: float = 0.0
    _ports: list[dict[str, int]] = field(default_factory=list, repr=False)
    _run_as: pwd.struct_passwd | None = field(default=None, repr=False)

    # -- URLs -------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """The app user's URL of the ``ovh_credit`` database on every node."""
        return [node.url for node in self.nodes]

    def urls_for(self, database: str) -> list[str]:
        return [node.url_for(database) for node in self.nodes]

    def create_database(self, name: str) -> list[str]:
        """A fresh database (DDL replicates to every node); its URL on each node."""
        dbservers.create_database(self._live_node(), name)
        return self.urls_for(name)

    def drop_database(self, name: str) -> None:
        dbservers.drop_database(self._live_node(), name)

    def _live_node(self) -> DatabaseServer:
        for node in self.nodes:
            if node.is_running():
                return node
        raise DatabaseServerError("no Galera node is running")

    # -- state ------------------------------------------------------------------

    def status(self, index: int) -> dict[str, str]:
        """The node's ``wsrep_%`` status variables."""
        import pymysql  # type: ignore[import-untyped]

        node = self.nodes[index]
        conn = pymysql.connect(host=node.host, port=node.port, user=node.admin_user,
                               connect_timeout=2, read_timeout=5, write_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep\\_%'")
                return {str(k): str(v) for k, v in cur.fetchall()}
        finally:
            conn.close()

    def wait_synced(self, index: int, *, size: int = NODES,
                    process: subprocess.Popen[bytes] | None = None) -> None:
        """Until node ``index`` is Synced, ready, in a primary component of ``size``."""
        node = self.nodes[index]
        deadline = time.monotonic() + JOIN_TIMEOUT
        last: Any = None
        while True:
            if process is not None and process.poll() is not None:
                raise DatabaseServerError(
                    f"Galera node{index} exited with code {process.returncode} while "
                    f"joining; log tail of {node.log_path}:\n{node.log_tail(60)}")
            try:
                status = self.status(index)
                last = {k: status.get(k) for k in (
                    "wsrep_local_state_comment", "wsrep_ready", "wsrep_cluster_size",
                    "wsrep_cluster_status")}
                if (status.get("wsrep_ready") == "ON"
                        and status.get("wsrep_local_state_comment") == "Synced"
                        and status.get("wsrep_cluster_status") == "Primary"
                        and status.get("wsrep_cluster_size") == str(size)):
                    return
            except Exception as error:  # not accepting connections yet
                last = error
            if time.monotonic() > deadline:
                raise DatabaseServerError(
                    f"Galera node{index} not synced in a cluster of {size} within "
                    f"{JOIN_TIMEOUT:.0f}s (last: {last!r}); log tail of "
                    f"{node.log_path}:\n{node.log_tail(60)}")
            time.sleep(0.1)

    def wait_size(self, size: int) -> None:
        """Until every running node sees a primary component of ``size`` nodes."""
        for index, node in enumerate(self.nodes):
            if node.is_running():
                self.wait_synced(index, size=size)

    # -- lifecycle --------------------------------------------------------------

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (a crash: no clean leave, no flush) and reap it."""
        process = self.nodes[index].process
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def restart(self, index: int) -> None:
        """Start node ``index`` again: it recovers its position, rejoins (IST, or SST when
        the others no longer hold what it missed) and is back when Synced in a full cluster.
        """
        node = self.nodes[index]
        if node.is_running():
            raise DatabaseServerError(f"Galera node{index} is running")
        position = self._recover_position(index)
        extra = [f"--wsrep-start-position={position}"] if position else []
        node.process = self._launch(index, extra)
        self.wait_synced(index, process=node.process)
        self.wait_size(NODES)

    def stop(self) -> None:
        """Kill every node (throwaway data: no clean shutdown needed)."""
        for node in self.nodes:
            node.stop(timeout=30)

    def __enter__(self) -> GaleraCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------

    def _cnf_path(self, index: int) -> Path:
        return self.base_dir / f"node{index}" / "my.cnf"

    def _launch(self, index: int, extra: Sequence[str]) -> subprocess.Popen[bytes]:
        node = self.nodes[index]
        mariadbd, _ = dbservers._mariadb_binaries()
        with open(node.log_path, "ab") as log:
            return subprocess.Popen(
                [*dbservers._die_with_parent("KILL"), str(mariadbd),
                 f"--defaults-file={self._cnf_path(index)}",
                 "--enforce-storage-engine=InnoDB", *extra],
                env=_env(self._run_as), cwd=node.data_dir.parent,
                user=self._run_as.pw_uid if self._run_as else None,
                group=self._run_as.pw_gid if self._run_as else None,
                extra_groups=[] if self._run_as else None,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )

    def _recover_position(self, index: int) -> str | None:
        """``mariadbd --wsrep-recover``: the last committed position InnoDB holds.

        After a SIGKILL the node's grastate.dat says seqno -1 (unknown); without
        the recovered position it would ask for a full state transfer (what
        Debian's galera_recovery does before a systemd start).
        """
        node = self.nodes[index]
        mariadbd, _ = dbservers._mariadb_binaries()
        recover_log = node.data_dir.parent / "wsrep-recover.log"
        recover_log.unlink(missing_ok=True)
        subprocess.run(
            [str(mariadbd), f"--defaults-file={self._cnf_path(index)}",
             "--enforce-storage-engine=InnoDB", "--wsrep-recover",
             f"--log-error={recover_log}"],
            env=_env(self._run_as), cwd=node.data_dir.parent,
            user=self._run_as.pw_uid if self._run_as else None,
            group=self._run_as.pw_gid if self._run_as else None,
            extra_groups=[] if self._run_as else None,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=JOIN_TIMEOUT, check=False,
        )
        found = _RECOVERED.findall(dbservers._read_from(recover_log, 0))
        return found[-1] if found else None


def start_cluster(base_dir: Path) -> GaleraCluster:
    """Init three nodes under ``base_dir``, bootstrap, join, create ``ovh_credit``.

    Raises DatabaseServerError (with the failing node's log) when a node does
    not start or join in time; nothing is left running then.
    """
    t0 = time.monotonic()
    provider = _provider()
    if provider is None or not galera_available():
        raise DatabaseServerError(
            "MariaDB Galera binaries not found (mariadbd, libgalera_smm.so, rsync); "
            "run .ci/install-db-servers.sh")
    _, install_db = dbservers._mariadb_binaries()
    base_dir = Path(base_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    run_as: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            run_as = pwd.getpwnam("mysql")
        except KeyError as exc:
            raise DatabaseServerError("running as root but there is no 'mysql' user") from exc
        dbservers.make_traversable(base_dir)

    used: set[int] = set()

    def port() -> int:
        candidate = _free_port_below_ephemeral(used)
        used.add(candidate)
        return candidate

    ports = [{"port": port(), "gcomm_port": port(), "ist_port": port(), "sst_port": port()}
             for _ in range(NODES)]
    peers = ",".join(f"{HOST}:{p['gcomm_port']}" for p in ports)
    nodes: list[DatabaseServer] = []
    cleanup: list[Path] = []
    for index, node_ports in enumerate(ports):
        node_dir = base_dir / f"node{index}"
        node_dir.mkdir()
        data_dir = node_dir / "data"
        data_dir.mkdir(mode=0o750)
        log_path = node_dir / "mariadb.log"
        log_path.touch()
        socket_dir, extra_cleanup = dbservers._socket_dir(node_dir, "mariadbd.sock")
        cleanup += extra_cleanup
        if run_as is not None:
            for path in (node_dir, data_dir, log_path, socket_dir):
                os.chown(path, run_as.pw_uid, run_as.pw_gid)
        cnf = _CNF.format(socket=socket_dir / "mariadbd.sock", port=node_ports["port"],
                          datadir=data_dir, base_dir=node_dir, log=log_path, host=HOST,
                          wsrep="{wsrep}")
        (node_dir / "my.cnf").write_text(cnf.format(wsrep=_WSREP.format(
            provider=provider, cluster_name=CLUSTER_NAME, peers=peers, index=index,
            host=HOST, **node_ports)))
        if index == 0:
            # The system tables, without wsrep: the bootstrap node's copy is what
            # the joiners receive by SST (their own data directories start empty).
            (node_dir / "install.cnf").write_text(cnf.format(wsrep=""))
        nodes.append(DatabaseServer(
            kind="mariadb", host=HOST, port=node_ports["port"],
            socket_path=socket_dir / "mariadbd.sock", data_dir=data_dir, log_path=log_path,
            database=DEFAULT_DATABASE, user=APP_USER, password=APP_PASSWORD,
            admin_user="root", process=_NOT_STARTED,
        ))
    # Short socket directories made outside base_dir (long paths) go with the first node.
    nodes[0]._cleanup_dirs.extend(cleanup)
    cluster = GaleraCluster(base_dir=base_dir, nodes=nodes, _ports=ports, _run_as=run_as)

    init = subprocess.run(
        [str(install_db), f"--defaults-file={base_dir / 'node0' / 'install.cnf'}",
         "--auth-root-authentication-method=normal", "--skip-test-db",
         "--skip-name-resolve"],
        env=_env(run_as), cwd=base_dir / "node0",
        user=run_as.pw_uid if run_as else None, group=run_as.pw_gid if run_as else None,
        extra_groups=[] if run_as else None,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
    )
    if init.returncode != 0:
        raise DatabaseServerError(
            f"mariadb-install-db failed (exit {init.returncode}):\n"
            f"{init.stdout.decode(errors='replace')[-4000:]}\n{nodes[0].log_tail()}")
    try:
        nodes[0].process = cluster._launch(0, ["--wsrep-new-cluster"])
        cluster.wait_synced(0, size=1, process=nodes[0].process)
        dbservers._mariadb_admin_execute(nodes[0], [
            f"CREATE USER '{APP_USER}'@'{HOST}' IDENTIFIED BY '{APP_PASSWORD}'",
            # The anonymous and hostname accounts of mariadb-install-db only
            # cause warnings under skip-name-resolve (as in tests/dbservers.py).
            "DELETE FROM mysql.global_priv WHERE User = '' "
            "OR Host NOT IN ('localhost', '127.0.0.1', '::1')",
            "DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1')",
            "FLUSH PRIVILEGES",
        ])
        # One joiner at a time: a donor serves one state transfer at once.
        for index in range(1, NODES):
            nodes[index].process = cluster._launch(index, [])
            cluster.wait_synced(index, size=index + 1, process=nodes[index].process)
        cluster.wait_size(NODES)
        cluster.create_database(DEFAULT_DATABASE)
    except BaseException:
        cluster.stop()
        raise
    cluster.startup_seconds = time.monotonic() - t0
    return cluster


def _free_port_below_ephemeral(used: set[int]) -> int:
    """A port nothing listens on, below the range the kernel draws from.

    A node binds its ports seconds after they are drawn (the IST port only when
    it joins), and while the suite runs, every outgoing connection takes a
    source port from the ephemeral range: a port drawn there (``bind(0)``) was
    once taken in between, the joiner could not listen for IST, its SST failed
    and it aborted (CI, 2026-12-04). Below that range only a listener takes a
    port, and every test server but these binds port 0.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    first = max(1024, low - 12000)
    rng = random.Random()
    for _ in range(1000):
        candidate = rng.randrange(first, low)
        if candidate in used:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, candidate))
            except OSError:
                continue
        return candidate
    raise DatabaseServerError(f"no free port in [{first}, {low}) on {HOST}")


class _NotStarted(subprocess.Popen):  # type: ignore[type-arg]
    """Placeholder process of a node not launched yet: "exited", nothing to kill."""

    def __init__(self) -> None:  # no super().__init__: there is no process
        self.returncode = -1
        self.pid = -1

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode

    def __del__(self) -> None:
        pass


_NOT_STARTED = _NotStarted()


def _env(run_as: pwd.struct_passwd | None) -> dict[str, str]:
    env = dbservers._plain_env()
    if run_as is not None:
        env.update(HOME=run_as.pw_dir, USER=run_as.pw_name, LOGNAME=run_as.pw_name)
    return env


# -- ledgers on the cluster ---------------------------------------------------------


@dataclass
class GaleraLedger:
    """A migrated ledger on the cluster: one URL and config file per node."""

    name: str
    urls: list[str]
    configs: list[Path]
    vouchers: Path

    def on(self, node: int) -> Ledger:
        """The ledger as seen through ``node`` (for helpers written for one server)."""
        return Ledger(backend="galera", url=self.urls[node], config=self.configs[node],
                      vouchers=self.vouchers)


def new_galera_ledger(
    cluster: GaleraCluster, directory: Path, *, migrate: bool = True
) -> GaleraLedger:
    name = f"t_{uuid.uuid4().hex[:16]}"
    urls = cluster.create_database(name)
    if migrate:
        workload.migrate(urls[0])
    directory.mkdir(parents=True, exist_ok=True)
    vouchers = directory / "vouchers.json"
    vouchers.write_text(json.dumps(VOUCHERS))
    configs = [write_config(directory / f"node{i}.conf", url, vouchers)
               for i, url in enumerate(urls)]
    return GaleraLedger(name=name, urls=urls, configs=configs, vouchers=vouchers)
