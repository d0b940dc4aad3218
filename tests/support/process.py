"""A server in a child process (tests/support/serve.py or a console script), stopped for sure."""

from __future__ import annotations

import fcntl
import os
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """A child serving HTTP on 127.0.0.1; its log goes to ``log_path``."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            env={**os.environ, **env}, cwd=ROOT,
        )
        self.port = 0

    @classmethod
    def wsgi(cls, factory: str, *, env: dict[str, str], log_path: Path,
             timeout: float = 120) -> ServerProcess:
        """``factory`` (``module:callable``) served by tests/support/serve.py."""
        server = cls([sys.executable, "-m", "tests.support.serve", factory], env=env,
                     log_path=log_path)
        server.port = server._read_port(timeout)
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _read_port(self, timeout: float) -> int:
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            self.stop()
            raise RuntimeError(f"server did not start in {timeout}s; see {self.log_path}")
        line = self.process.stdout.readline().decode()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"server failed to start ({line.strip()!r}); see "
                               f"{self.log_path}:\n{self.tail()}")
        return int(line.split()[1])

    def wait_until_answering(self, path: str = "/", timeout: float = 60) -> None:
        """For a server whose port was given to it: until it answers HTTP at all."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n"
                                   f"{self.tail()}")
            try:
                urllib.request.urlopen(self.url + path, timeout=5).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"server not answering after {timeout}s:\n"
                                       f"{self.tail()}") from None
                time.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        if not self._log.closed:
            self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.close()
                self.process.terminate()
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self._log.close()


def join_or_terminate(processes: Iterable[BaseProcess]) -> None:
    """Wait for each child of a multiprocessing race; one still running (its test gave
    up waiting for it) is terminated, never left behind."""
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """One process at a time past this point (an ``flock`` on ``path``, made if missing):
    two pytest workers or two worktrees build a cached template once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
