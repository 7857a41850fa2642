# -*- test-case-name: raftmux.test.test_httpbody -*-
"""
Reading HTTP response bodies with a bound: the one helper every client in
raftmux uses (rafthttp's pipeline, stream and snapshot senders and prober,
the node's dialer, join and API forwarding, the local cluster's client).

Twisted's ``readBody`` buffers whatever the other side sends.  Here every
read names the most it will keep: a body that grows past it fails the
Deferred with ``BodyTooLarge`` (saying how large it got and what the limit
was) and the connection is dropped at once, so a peer cannot make us buffer
an unbounded answer.  ``discardBody`` reads a body to its end keeping
nothing, so the connection can be reused.  ``BytesProducer`` is the
matching request body: bytes written in one go with a Content-Length.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

__all__ = ["BodyTooLarge", "BytesProducer", "discardBody", "readBody"]


class BodyTooLarge(Exception):
    """A response body went past the size its reader allowed."""

    def __init__(self, limit: int, received: int) -> None:
        Exception.__init__(self, "response body larger than %d bytes (%d received so far)"
                           % (limit, received))
        self.limit = limit
        self.received = received


class _BoundedBody(Protocol):
    """Collects at most ``limit`` bytes (``None``: keeps nothing, reads it all)."""

    transport: Any  # set by makeConnection; used beyond ITransport (producer, abort)

    def __init__(self, finished, limit):
        self.finished = finished
        self.limit = limit
        self.parts = []
        self.size = 0

    def dataReceived(self, data):
        if self.finished is None:
            return
        self.size += len(data)
        if self.limit is None:
            return
        if self.size > self.limit:
            finished, self.finished = self.finished, None
            self.parts = []
            self.transport.stopProducing()
            finished.errback(BodyTooLarge(self.limit, self.size))
            return
        self.parts.append(data)

    def connectionLost(self, reason=connectionDone):
        finished, self.finished = self.finished, None
        if finished is None:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            finished.callback(b"".join(self.parts))
        else:
            finished.errback(reason)

    def cancel(self, _):
        self.finished = None
        if self.transport is not None:
            self.transport.stopProducing()


def _deliver(response, limit):
    reader = _BoundedBody(None, limit)
    reader.finished = Deferred(reader.cancel)
    d = reader.finished
    response.deliverBody(reader)
    return d


def readBody(response: IResponse, maxSize: int) -> Deferred[bytes]:
    """
    A Deferred firing with ``response``'s whole body once it has ended, or
    failing with ``BodyTooLarge`` as soon as it exceeds ``maxSize`` bytes
    (the connection is then closed).  Cancelling it closes the connection.
    """
    if maxSize is None or maxSize < 0:
        raise ValueError("readBody needs a maximum size (bytes), got %r" % (maxSize,))
    return _deliver(response, maxSize)


def discardBody(response: IResponse) -> Deferred[None]:
    """Read ``response``'s body to its end and drop it; errors are ignored."""
    d = _deliver(response, None)
    d.addErrback(lambda _: None)
    return d


@implementer(IBodyProducer)
class BytesProducer:
    """A request body written in one go (a Content-Length request)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self.data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass
