# -*- test-case-name: raftmux.test.test_rafthttp_peer -*-
"""
Test helpers for code built on ``Transport``: a recording ``IRaft``, a
bounded wait for a condition on a real reactor, and a process protocol
that keeps a real peer's (etcd's) output in a log file.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import protocol
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import deferLater
from zope.interface import implementer

from raftmux.rafthttp.interfaces import IRaft
from raftmux.raftpb import Message

__all__ = ["FakeRaft", "LoggedProcess", "waitFor"]


@implementer(IRaft)
class FakeRaft:
    """
    Records what a Transport gives it.  ``processResult`` is returned from
    ``process`` (None, an exception to fail with, or a Deferred);
    ``removed`` holds IDs for ``isIDRemoved``.  ``waitForMessages(n)``
    fires once ``n`` messages arrived.
    """

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.unreachable: list[int] = []
        self.snapshots: list[tuple[int, int]] = []
        self.removed: set[int] = set()
        self.processResult: Any = None
        self.onMessage: Any = None
        self._waiters: list[tuple[int, Deferred[Any]]] = []

    def process(self, message: Message) -> Deferred[Any]:
        self.messages.append(message)
        if self.onMessage is not None:
            self.onMessage(message)
        for waiter in list(self._waiters):
            n, d = waiter
            if len(self.messages) >= n:
                self._waiters.remove(waiter)
                d.callback(self.messages)
        result = self.processResult
        if isinstance(result, Exception):
            return fail(result)
        if isinstance(result, Deferred):
            return result
        return succeed(None)

    def isIDRemoved(self, id: int) -> bool:
        return id in self.removed

    def reportUnreachable(self, id: int) -> None:
        self.unreachable.append(id)

    def reportSnapshot(self, id: int, status: int) -> None:
        self.snapshots.append((id, status))

    def waitForMessages(self, n: int) -> Deferred[list[Message]]:
        if len(self.messages) >= n:
            return succeed(self.messages)
        d: Deferred[Any] = Deferred()
        self._waiters.append((n, d))
        return d


async def waitFor(reactor, predicate, timeout=10.0, interval=0.01, what="condition"):
    """
    Poll ``predicate`` on a real reactor until it is true; raise
    ``AssertionError`` after ``timeout`` seconds (a bounded loop).
    """
    for _ in range(int(timeout / interval) + 1):
        if predicate():
            return
        await deferLater(reactor, interval, lambda: None)
    if not predicate():
        raise AssertionError("timed out waiting for %s" % (what,))


class LoggedProcess(protocol.ProcessProtocol):
    """
    A child process (a real etcd, say) whose stdout and stderr go to
    ``log`` (a binary file); ``ended`` fires once it has been reaped.
    """

    def __init__(self, log):
        self.log = log
        self.ended: Deferred[Any] = Deferred()

    def outReceived(self, data):
        self.log.write(data)

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(None)
