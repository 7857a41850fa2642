# -*- test-case-name: raftmux.test.test_rafthttp_peer -*-
"""
etcd's ``recvc`` / ``propc``: a bounded queue of received messages, handed
to ``IRaft.process`` one at a time.
"""

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

__all__ = ["Inbox", "RECV_BUF_SIZE"]

# recvBufSize and maxPendingProposals.
RECV_BUF_SIZE = 4096


class Inbox:
    """
    ``put(message)`` queues a message for ``raft.process`` and returns
    False (the message dropped) when ``size`` are already waiting.  The next
    message goes to raft when the previous one's Deferred fires, so a
    proposal waiting for a leader holds up only its own inbox.
    """

    log = Logger()

    def __init__(self, raft, size=RECV_BUF_SIZE, name="recv"):
        self.raft = raft
        self.size = size
        self.name = name
        self._queue: deque[Any] = deque()
        self._busy = False

    def __len__(self):
        return len(self._queue)

    def put(self, message):
        if len(self._queue) >= self.size:
            return False
        self._queue.append(message)
        if not self._busy:
            self._drain()
        return True

    def _drain(self):
        queue = self._queue
        self._busy = True
        while queue:
            message = queue.popleft()
            try:
                d = self.raft.process(message)
            except Exception:
                self.log.failure("failed to process raft message (type {type})",
                                 type=message.type)
                continue
            if isinstance(d, Deferred):
                if d.called and not d.paused:
                    d.addErrback(self._failed, message)
                    continue
                d.addErrback(self._failed, message)
                d.addBoth(self._resume)
                return
        self._busy = False

    def _failed(self, failure, message):
        self.log.failure("failed to process raft message (type {type})", failure,
                         type=message.type)

    def _resume(self, _):
        self._drain()
