# -*- test-case-name: raftmux.test.test_h2_connection -*-
"""
The client role of the HTTP/2 shell: ``H2ClientProtocol.openStream``
opens a stream with a request's headers and attaches a handler to it.

Streams beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS wait in a
queue on the connection (until the server's SETTINGS arrives,
``assumedPeerMaxStreams`` are opened).  Over TLS the preface waits for the
handshake, and ALPN must have chosen ``h2``.
"""

from collections import deque

from h2.exceptions import TooManyStreamsError
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHandshakeListener, INegotiated
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux.h2.connection import H2Protocol
from raftmux.h2.errors import ConnectionGoneAway, NotHTTP2
from raftmux.h2.stream import H2Stream

__all__ = ["H2ClientProtocol"]


class _Open:
    """One queued ``openStream`` call."""

    __slots__ = ("headers", "handler", "endStream", "buildStream", "deferred")

    def __init__(self, headers, handler, endStream, buildStream, deferred):
        self.headers = headers
        self.handler = handler
        self.endStream = endStream
        self.buildStream = buildStream
        self.deferred = deferred


@implementer(IHandshakeListener)
class H2ClientProtocol(H2Protocol):
    """
    One client connection.  ``listener`` (an ``IH2ConnectionListener``,
    usually the pool) hears when the connection is ready, when stream slots
    free up and when it goes.  ``whenReady()`` fires with the connection
    once it can carry requests, or fails (``NotHTTP2``, the TLS failure).
    """

    clientSide = True

    def __init__(self, clock, config=None, listener=None):
        H2Protocol.__init__(self, clock, config)
        self.listener = listener
        self.ready = False
        self._queue = deque()
        self._readyWaiters = []
        self._failure = None
        self._maxStreams = None

    # -- readiness --------------------------------------------------------------

    def connectionMade(self):
        if INegotiated.providedBy(self.transport):
            # TLS: speak only once ALPN said h2 (handshakeCompleted).
            self.transport.registerProducer(self, True)
            self._lastReceived = self.clock.seconds()
            return
        H2Protocol.connectionMade(self)
        self._becomeReady()

    def handshakeCompleted(self):
        negotiated = getattr(self.transport, "negotiatedProtocol", None)
        if negotiated != b"h2":
            self._failure = NotHTTP2(negotiated)
            self.closed = True
            self.transport.unregisterProducer()
            self.transport.loseConnection()
            return
        self.startProtocol()
        self._becomeReady()

    def _becomeReady(self):
        self.ready = True
        waiters, self._readyWaiters = self._readyWaiters, []
        for d in waiters:
            d.callback(self)
        if self.listener is not None:
            self.listener.connectionReady(self)

    def whenReady(self):
        if self.ready:
            return succeed(self)
        if self.closed and self.transport is None:
            return fail(self._failure or ConnectionGoneAway("connection closed", retryable=True))
        d = Deferred()
        self._readyWaiters.append(d)
        return d

    # -- capacity -----------------------------------------------------------------

    @property
    def available(self):
        """May new streams be opened here (ready, not closing, no GOAWAY either way)?"""
        return (self.ready and not self.closed and self.goAwaySent is None
                and self.goAwayReceived is None)

    @property
    def maxStreams(self):
        """Streams the server lets us have open at once (as far as we know yet)."""
        limit = self._maxStreams
        if limit is None:
            limit = self.conn.remote_settings.max_concurrent_streams
            if not self.peerSettingsReceived:
                limit = min(limit, self.config.assumedPeerMaxStreams)
            self._maxStreams = limit
        return limit

    @property
    def freeSlots(self):
        """Streams we could open now without queueing."""
        return max(0, self.maxStreams - len(self.streams) - len(self._queue))

    @property
    def queued(self):
        return len(self._queue)

    # -- opening streams --------------------------------------------------------------

    def openStream(self, headers, handler=None, endStream=False, buildStream=None):
        """
        Open a stream with the request ``headers`` (``(name, value)`` bytes
        pairs, pseudo-header fields first; sent as given) and attach
        ``handler`` (an ``IProtocol``, preferably an ``IH2StreamHandler``)
        to it.  ``endStream``: the request has no body.  ``buildStream(
        connection, streamId)`` makes the stream (default: an ``H2Stream``).

        Returns a Deferred firing with the ``H2Stream`` once its HEADERS are
        sent: at once, or when a slot frees up.  It fails with
        ``ConnectionGoneAway(retryable=True)`` if the connection goes before
        that; cancelling it takes the request out of the queue.
        """
        if not self.available:
            return fail(self._failure or ConnectionGoneAway(
                "the connection is closing", retryable=True))
        if not self._queue and len(self.streams) < self.maxStreams:
            stream = self.startStream(headers, handler, endStream, buildStream)
            if stream is not None:
                return succeed(stream)
        entry = _Open(headers, handler, endStream, buildStream, None)
        entry.deferred = d = Deferred(lambda _: self._unqueue(entry))
        self._queue.append(entry)
        return d

    def _unqueue(self, entry):
        try:
            self._queue.remove(entry)
        except ValueError:
            pass

    def startStream(self, headers, handler=None, endStream=False, buildStream=None):
        """
        ``openStream`` now, without a Deferred: the ``H2Stream``, or None if
        the peer's stream limit is reached (callers check ``freeSlots``).
        """
        conn = self.conn
        streamId = conn.get_next_available_stream_id()
        if buildStream is not None:
            stream = buildStream(self, streamId)
        else:
            stream = H2Stream(self, streamId, maxBodySize=self.config.maxBodySize)
        self.streams[streamId] = stream
        holding, self._holding = self._holding, True
        try:
            try:
                stream.sendHeaders(headers, endStream)
            except TooManyStreamsError:
                del self.streams[streamId]
                return None
            if len(self.streams) == 1:
                self._idleSince = None
            if handler is not None:
                stream.attach(handler)
        finally:
            self._holding = holding
        self.flush()
        return stream

    def _start(self, entry):
        stream = self.startStream(entry.headers, entry.handler, entry.endStream,
                                  entry.buildStream)
        if stream is None:
            self._queue.appendleft(entry)
            return False
        entry.deferred.callback(stream)
        return True

    def _startQueued(self):
        queue = self._queue
        while queue and self.available and len(self.streams) < self.maxStreams:
            if not self._start(queue.popleft()):
                break

    # -- events -------------------------------------------------------------------------

    def streamClosed(self, stream):
        if self._queue:
            self._startQueued()
        if self.listener is not None:
            self.listener.capacityChanged(self)

    def peerSettingsChanged(self, changed):
        self._maxStreams = None
        if self._queue:
            self._startQueued()
        if self.listener is not None:
            self.listener.capacityChanged(self)

    def goingAway(self):
        queue, self._queue = self._queue, deque()
        for entry in queue:
            entry.deferred.errback(ConnectionGoneAway(
                "the connection went away before the request started", retryable=True))
        if self.listener is not None:
            self.listener.connectionGone(self, None)

    def connectionLost(self, reason=None):
        readyWaiters, self._readyWaiters = self._readyWaiters, []
        H2Protocol.connectionLost(self, reason)
        failure = self._failure
        if failure is None:
            failure = reason if reason is not None else Failure(ConnectionDone())
        for d in readyWaiters:
            d.errback(failure)
        queue, self._queue = self._queue, deque()
        for entry in queue:
            entry.deferred.errback(ConnectionGoneAway(
                "the connection was lost before the request started", retryable=True))

    def connectionClosed(self, reason):
        if self.listener is not None:
            self.listener.connectionGone(self, reason)
