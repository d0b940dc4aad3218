"""Name resolution with a timeout: ``getaddrinfo`` in a small shared pool of threads.

``socket.getaddrinfo`` blocks in C and nothing interrupts it: a slow or dead
DNS server holds the caller for the resolver's own timeouts (5 s per try,
times attempts, times nameservers), whatever the socket timeouts say
(urllib3 issues 1334 and 3588). The only bound a client can put on it is
to resolve in another thread and stop waiting for it: :func:`getaddrinfo`
does that, and raises :class:`ResolutionTimeout` when the answer does not
come in time. The thread it leaves behind finishes the lookup on its own.

So that a dead DNS server under load cannot pile such threads up:

* one shared pool of at most :data:`MAX_THREADS` daemon threads (daemon: a
  command-line process that gave up on a lookup must not wait for it at
  exit), started when needed and ending after :data:`IDLE_SECONDS` without
  work;
* a lookup already in flight (or queued) for the same arguments is joined,
  not repeated: every connection attempt to a catalog whose name hangs,
  retries included, waits on the one lookup, and a retry gets its answer
  if it comes in time;
* a lookup still queued when its last waiter gives up is dropped, so the
  queue holds at most one lookup per caller waiting right now.

Nothing is cached: an answer goes to the callers waiting for it, and the
next connection asks the system again (its own caches, and the records'
time to live, decide). A leaf module.

Under eventlet's (or gevent's) monkey patching the pool's threads are green
threads, and its locks green locks, also when this module was imported
before the patching (the OS lock made then, taken by a green thread, froze
the whole process). A green ``getaddrinfo`` (eventlet's greendns) is bounded
as above; the system's (``EVENTLET_NO_GREENDNS=yes``) blocks every green
thread until it returns, as it did without this module.
"""

from __future__ import annotations

import collections
import copy
import errno
import functools
import ipaddress
import os
import socket
import threading
from typing import Any

#: Threads that may be inside ``getaddrinfo`` at once, for the whole process.
MAX_THREADS = 4
#: Seconds a pool thread waits for work before it ends.
IDLE_SECONDS = 30.0

THREAD_NAME = "ovh-credit-catalog-resolver"

_Key = tuple[str, int, int, int]
AddrInfo = list[tuple[Any, ...]]


class ResolutionTimeout(TimeoutError):
    """The name was not resolved within the time given."""


class _Lookup:
    __slots__ = ("done", "error", "key", "result", "started", "waiters")

    def __init__(self, key: _Key) -> None:
        self.key = key
        self.done = threading.Event()
        self.result: AddrInfo | None = None
        self.error: Exception | None = None
        self.started = False
        self.waiters = 0


class _State:
    """The pool's threads, queue and lookups, behind one lock.

    Each thread keeps the state it was started for: a state replaced (after
    a fork, or when green threads replaced the threading module's locks)
    is never touched again by the threads of another.
    """

    __slots__ = ("idle", "lock", "lock_type", "lookups", "queue", "threads", "work")

    def __init__(self) -> None:
        # The threading module's Lock as it is now: eventlet or gevent, when
        # they patched it, give their green lock (a blocking OS lock taken in
        # a green thread would stop every other one).
        self.lock_type = threading.Lock
        self.lock = threading.Lock()
        self.work = threading.Condition(self.lock)
        self.queue: collections.deque[_Lookup] = collections.deque()
        self.lookups: dict[_Key, _Lookup] = {}
        self.threads = 0
        self.idle = 0


class _Pool:
    """At most ``size`` threads running lookups; one lookup per distinct question."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._reset()

    def _reset(self) -> None:
        # Also the child's state after a fork: the parent's threads (and the
        # lookups they run) are not in the child, and its lock may be held.
        self._state = _State()

    def _current(self) -> _State:
        state = self._state
        if state.lock_type is not threading.Lock:
            # The threading module was patched (eventlet.monkey_patch(), gevent)
            # after this module was imported: a state of green locks, for green
            # threads. No green thread switch happens between the test and the
            # assignment: green threads cannot both replace it.
            self._reset()
            state = self._state
        return state

    def stats(self) -> dict[str, int]:
        """Threads alive, lookups queued and lookups not finished: for tests and debugging."""
        state = self._current()
        with state.lock:
            return {"threads": state.threads, "queued": len(state.queue),
                    "lookups": len(state.lookups)}

    def resolve(self, key: _Key, timeout: float) -> AddrInfo:
        state = self._current()
        with state.lock:
            lookup = state.lookups.get(key)
            if lookup is None:
                lookup = _Lookup(key)
                state.lookups[key] = lookup
                state.queue.append(lookup)
                self._dispatch(state)
            lookup.waiters += 1
        try:
            lookup.done.wait(timeout)
        finally:
            with state.lock:
                lookup.waiters -= 1
                answered = lookup.done.is_set()
                if not answered and lookup.waiters == 0 and not lookup.started:
                    # Nobody wants it any more: a thread freed later would
                    # resolve for nobody.
                    state.queue.remove(lookup)
                    del state.lookups[key]
        if not answered:
            raise ResolutionTimeout(f"{key[0]!r} not resolved within {timeout:g} s")
        if lookup.error is not None:
            # A copy: the waiters of one lookup raise it in their own threads,
            # each with its own traceback.
            raise _copied(lookup.error)
        assert lookup.result is not None  # set with done, under the lock
        return list(lookup.result)

    def _dispatch(self, state: _State) -> None:
        """A lookup was just queued (the lock held): wake an idle thread or start one."""
        if state.idle >= len(state.queue):
            state.work.notify()
            return
        if state.threads >= self._size:
            return  # it waits for a thread; its waiters time out meanwhile
        thread = threading.Thread(target=self._run, args=(state,), name=THREAD_NAME,
                                  daemon=True)
        state.threads += 1
        try:
            thread.start()
        except RuntimeError:  # no more threads in this process: the waiters time out
            state.threads -= 1

    def _run(self, state: _State) -> None:
        counted = True
        try:
            while True:
                with state.lock:
                    while not state.queue:
                        state.idle += 1
                        try:
                            woken = state.work.wait(IDLE_SECONDS)
                        finally:  # wait() takes the lock back, even when interrupted
                            state.idle -= 1
                        if not woken and not state.queue:
                            state.threads -= 1
                            counted = False
                            return
                    lookup = state.queue.popleft()
                    lookup.started = True
                self._look_up(state, lookup)
        finally:
            if counted:  # ended by an exception the lookup let through
                with state.lock:
                    state.threads -= 1

    @staticmethod
    def _look_up(state: _State, lookup: _Lookup) -> None:
        host, port, family, kind = lookup.key
        result: AddrInfo | None = None
        error: Exception | None = None
        try:
            # Looked up when called: the system's resolver, or whatever
            # replaced it (a test's).
            result = socket.getaddrinfo(host, port, family, kind)
        except Exception as caught:  # gaierror, UnicodeError...: for the waiters
            error = caught
        except BaseException:
            # SystemExit, a green thread killed (GreenletExit): this thread
            # ends, but the lookup must not stay unfinished, or every later
            # lookup of the name would join it and time out, for good. Its
            # waiters hear a connection that failed ("[Errno 4] Interrupted
            # system call"), which is retried.
            error = InterruptedError(errno.EINTR, os.strerror(errno.EINTR))
            raise
        finally:
            with state.lock:
                lookup.result, lookup.error = result, error
                if state.lookups.get(lookup.key) is lookup:
                    del state.lookups[lookup.key]
                lookup.done.set()


def _copied(error: Exception) -> Exception:
    """A copy of ``error`` to raise (``copy.copy`` rebuilds it from its ``args``), or
    ``error`` itself when its class cannot be rebuilt so."""
    try:
        return copy.copy(error)
    except Exception:  # an __init__ that does not take its own args back
        return error


_POOL = _Pool(MAX_THREADS)
os.register_at_fork(after_in_child=_POOL._reset)


def getaddrinfo(host: str, port: int, family: int, kind: int, *, timeout: float) -> AddrInfo:
    """``socket.getaddrinfo(host, port, family, kind)``, given up after ``timeout`` seconds.

    Raises what ``getaddrinfo`` raised (``socket.gaierror``...), or
    :class:`ResolutionTimeout` when it has not answered in time.
    """
    return _POOL.resolve((host, port, family, kind), timeout)


def stats() -> dict[str, int]:
    """The pool's threads, queued lookups and unfinished lookups."""
    return _POOL.stats()


@functools.lru_cache(maxsize=64)
def needs_lookup(host: str) -> bool:
    """False for an IP address or ``localhost``: those go straight to ``getaddrinfo``.

    An address needs no DNS (``getaddrinfo`` parses it) and ``localhost``
    is answered by the hosts file: handing them to a thread would only
    cost time. Remembered per host (a driver connects to one or two).
    """
    name = host.strip("[]")
    if name.rstrip(".").lower() == "localhost":
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return True
    return False
