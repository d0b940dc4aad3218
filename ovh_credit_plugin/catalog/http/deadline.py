"""The total deadline of one catalog operation, retries, sleeps and body included.

A read timeout bounds each ``recv``, not an answer that keeps sending one
byte just before every timeout. So an operation has a deadline, the
timeouts of each attempt shrink to what is left of it (:class:`DeadlineTimeout`),
and a watchdog thread shuts down the sockets the operation holds once it
passes. A leaf: connections reach it through the :class:`Holdable` protocol.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

from urllib3.util import Timeout


class Holdable(Protocol):
    """A connection an operation can hold: ``transport``'s watched connections."""

    # The operation holding the connection, until the pool gets it back.
    operation: Operation | None

    @property
    def sock(self) -> Any: ...


class Operation:
    """One catalog operation (retries included) and its deadline.

    The watchdog shuts down the sockets the operation holds once the deadline
    passes. Only the sockets it *holds*: a connection it gave back to the
    pool may be another thread's by then, in the middle of a call well
    within that call's own budget.
    """

    def __init__(self, *, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.expired = False
        self._finished = False
        self._lock = threading.Lock()
        self._connections: list[Holdable] = []
        _WATCHDOG.watch(self)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def out_of_time(self) -> bool:
        return self.expired or self.remaining() <= 0

    def watch(self, connection: Holdable) -> None:
        with self._lock:
            if self.expired:
                _shutdown(connection)
            elif connection not in self._connections:
                self._connections.append(connection)
                connection.operation = self

    def release(self, connection: Holdable) -> None:
        """``connection`` goes back to the pool: no longer this operation's to shut down."""
        # Under the lock, so that expire either shuts it down before it is
        # back in the pool or never sees it.
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)
            if connection.operation is self:
                connection.operation = None

    def expire(self) -> None:
        """The deadline passed: shut down what the operation still holds.

        The watchdog calls this; public so that a test can pass a deadline
        without waiting for it.
        """
        with self._lock:
            if self._finished:  # its connections went back to the pool, for others
                return
            self.expired = True
            for connection in self._connections:
                _shutdown(connection)

    def finish(self) -> None:
        with self._lock:
            self._finished = True
            for connection in self._connections:
                if connection.operation is self:
                    connection.operation = None
            self._connections.clear()


class _Watchdog:
    """One daemon thread that expires operations when their deadlines pass.

    A ``threading.Timer`` per operation cost a thread start per activation
    (~0.2 ms, a tenth of two loopback round trips, more on a loaded host).
    Operations are kept in a heap by deadline; finished ones are not taken
    out (their ``expire`` does nothing) but dropped when their deadline
    comes, so the heap holds at most one ``timeout`` worth of operations.
    The thread is woken only when a new deadline comes before the one it
    sleeps until: with one configured timeout, deadlines arrive in order,
    so in the steady state registering an operation wakes nobody.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Operation]] = []
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None

    def reset_after_fork(self) -> None:
        # A forked child has no watchdog thread, and the parent's lock may
        # have been held at the fork; the parent's operations are not the
        # child's.
        self._condition = threading.Condition(threading.Lock())
        self._heap = []
        self._thread = None

    def watch(self, operation: Operation) -> None:
        with self._condition:
            first = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (operation.deadline, next(self._sequence), operation))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ovh-credit-catalog-deadlines", daemon=True
                )
                self._thread.start()
            elif first is None or operation.deadline < first:
                self._condition.notify()

    def _run(self) -> None:
        while True:
            due: list[Operation] = []
            with self._condition:
                while not due:
                    now = time.monotonic()
                    while self._heap and self._heap[0][0] <= now:
                        due.append(heapq.heappop(self._heap)[2])
                    if not due:
                        wait = self._heap[0][0] - now if self._heap else None
                        self._condition.wait(wait)
            # Outside the heap's lock: an operation's lock is never taken under it.
            for operation in due:
                operation.expire()


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG.reset_after_fork)


def _shutdown(connection: Holdable) -> None:
    sock = connection.sock
    if sock is None:
        return
    # socket.socket's own shutdown, also on an SSLSocket: the OS-level
    # shutdown wakes the reading thread; SSLSocket.shutdown would unwrap
    # the TLS object under its feet.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


# The operation running in this thread (urllib3 calls back into the Retry,
# the Timeout and the connection in the caller's thread).
_OPERATION: contextvars.ContextVar[Operation | None] = contextvars.ContextVar(
    "ovh_credit_catalog_operation", default=None
)


def current() -> Operation | None:
    """The operation running in this context, if any."""
    return _OPERATION.get()


def remaining() -> float | None:
    """What is left of the running operation's deadline; None outside one."""
    operation = _OPERATION.get()
    return None if operation is None else operation.remaining()


@contextlib.contextmanager
def running(*, seconds: float) -> Iterator[Operation]:
    """The operation of this context, or a new one of ``seconds`` for the block.

    Inside another operation the block spends what is left of that budget
    (a check then a redemption under one deadline); a new operation is
    finished when the block ends, so its connections are no longer watched.
    """
    outer = _OPERATION.get()
    operation = outer or Operation(seconds=seconds)
    token = _OPERATION.set(operation)
    try:
        yield operation
    finally:
        _OPERATION.reset(token)
        if outer is None:
            operation.finish()


class DeadlineTimeout(Timeout):
    """Connect and read timeouts of one attempt, never beyond the deadline."""

    def __init__(self, *, connect: float, read: float, operation: Operation) -> None:
        super().__init__(connect=connect, read=read)
        self._operation = operation

    def clone(self) -> DeadlineTimeout:
        # urllib3 clones the timeout for every attempt: that is where the
        # attempt's share of the deadline is fixed.
        return DeadlineTimeout(
            connect=float(self._connect),  # type: ignore[arg-type]
            read=float(self._read),  # type: ignore[arg-type]
            operation=self._operation,
        )

    @property
    def connect_timeout(self) -> float:
        return max(0.001, min(float(self._connect), self._operation.remaining()))  # type: ignore[arg-type]

    @property
    def read_timeout(self) -> float:
        # 0 makes urllib3 give up the attempt at once (ReadTimeoutError).
        return max(0.0, min(float(self._read), self._operation.remaining()))  # type: ignore[arg-type]
