"""A throwaway RabbitMQ broker on loopback: the real transport of the notification tests.

Started by the tests themselves from Debian's ``rabbitmq-server`` package
(installed by ``.ci/install-db-servers.sh``): its own Erlang port mapper
(epmd) and node on free ports of 127.0.0.1, its data, logs and Erlang cookie
in a directory of the caller's, nothing of the system's broker (which the
install script leaves stopped). ``guest``/``guest`` may connect from
loopback, RabbitMQ's default. Both processes get ``PR_SET_PDEATHSIG``, so
they die with the test process even if :meth:`RabbitMQ.stop` is never reached.

Starting takes about ten seconds (Erlang boots, then the node).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
START_TIMEOUT = float(os.environ.get("OVH_TEST_RABBITMQ_START_TIMEOUT", "90"))


class RabbitMQError(RuntimeError):
    """The broker could not be found or started."""


def available() -> bool:
    return SERVER.is_file() and shutil.which("epmd") is not None


@dataclass
class RabbitMQ:
    port: int
    directory: Path
    processes: list[subprocess.Popen[bytes]] = field(repr=False)

    @property
    def transport_url(self) -> str:
        """oslo.messaging's URL of the broker's default virtual host."""
        return f"rabbit://guest:guest@{HOST}:{self.port}/"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.directory / "server.log").read_text(errors="replace")
        except OSError as error:
            return f"<no log: {error}>"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        for process in self.processes:  # the node first, then its port mapper
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=timeout)


def start(directory: Path) -> RabbitMQ:
    """A running broker whose files live in ``directory`` (created)."""
    if not available():
        raise RabbitMQError(f"{SERVER} or epmd is missing (bash .ci/install-db-servers.sh)")
    directory.mkdir(parents=True, exist_ok=True)
    amqp, distribution, mapper = _free_ports(3)
    (directory / "rabbitmq.conf").write_text(
        f"listeners.tcp.1 = {HOST}:{amqp}\n"
        "log.console = true\nlog.file = false\n"
    )
    (directory / "enabled_plugins").write_text("[].\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin:/usr/sbin:/sbin"),
        "HOME": str(directory),  # the Erlang cookie
        "LANG": "C.UTF-8",
        "ERL_EPMD_PORT": str(mapper),
        "ERL_EPMD_ADDRESS": HOST,
        "RABBITMQ_CONF_ENV_FILE": os.devnull,  # not the system's rabbitmq-env.conf
        "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
        "RABBITMQ_LOG_BASE": str(directory / "log"),
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_PID_FILE": str(directory / "rabbitmq.pid"),
        "RABBITMQ_NODENAME": f"ovh-credit-test-{amqp}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(amqp),
        "RABBITMQ_DIST_PORT": str(distribution),
    }
    log = (directory / "server.log").open("wb")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # Our own port mapper, in the foreground: the node would otherwise
        # start one as a daemon that outlives the tests.
        processes.append(subprocess.Popen(
            [*_die_with_parent(), "epmd", "-port", str(mapper), "-address", HOST],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        ))
        processes.insert(0, subprocess.Popen(
            [*_die_with_parent(), str(SERVER)], env=env, cwd=directory, stdout=log,
            stderr=subprocess.STDOUT,
        ))
    finally:
        log.close()
    broker = RabbitMQ(port=amqp, directory=directory, processes=processes)
    try:
        _wait_until_ready(broker)
    except BaseException:
        broker.stop()
        raise
    return broker


def _wait_until_ready(broker: RabbitMQ) -> None:
    """Until an AMQP client completes its handshake (the port opens a little earlier)."""
    import kombu

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        node = broker.processes[0]
        if node.poll() is not None:
            raise RabbitMQError(f"rabbitmq-server exited with {node.returncode}:\n"
                                f"{broker.log_tail()}")
        try:
            with kombu.Connection(broker.transport_url.replace("rabbit://", "amqp://"),
                                  connect_timeout=2) as connection:
                connection.ensure_connection(max_retries=1)
            return
        except Exception as error:
            if time.monotonic() > deadline:
                raise RabbitMQError(f"rabbitmq-server not ready after {START_TIMEOUT} s "
                                    f"({error}):\n{broker.log_tail()}") from error
            time.sleep(0.5)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _die_with_parent() -> list[str]:
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig=TERM", "--"] if setpriv else []
