# -*- test-case-name: raftmux.test.test_rafthttp_pipeline -*-
"""
Small HTTP body helpers for the client side: a request body from bytes, and
reading a response body with a size bound (a peer cannot make us buffer an
unbounded error page).
"""

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

__all__ = ["BytesProducer", "readBody", "discardBody"]


@implementer(IBodyProducer)
class BytesProducer:
    """A request body written in one go (a Content-Length request)."""

    def __init__(self, data):
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer):
        consumer.write(self.data)
        return succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class _BoundedReader(Protocol):
    def __init__(self, finished, limit):
        self.finished = finished
        self.limit = limit
        self.parts = []
        self.size = 0

    def dataReceived(self, data):
        if self.size < self.limit:
            keep = data[:self.limit - self.size]
            self.parts.append(keep)
            self.size += len(keep)

    def connectionLost(self, reason):
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.parts))
        else:
            self.finished.errback(reason)


def readBody(response, limit=65536):
    """
    The first ``limit`` bytes of ``response``'s body, once it has ended (the
    rest is read and dropped, so the connection can be reused).
    """
    d = Deferred(lambda d: reader.transport.stopProducing()
                 if reader.transport is not None else None)
    reader = _BoundedReader(d, limit)
    reader.transport = None
    response.deliverBody(reader)
    return d


def discardBody(response):
    """Read and drop a response body; errors are ignored."""
    d = readBody(response, 0)
    d.addErrback(lambda _: None)
    return d
