# -*- test-case-name: raftmux.test.test_streamtransport -*-
"""
One stream-transport base for every multiplexed stream in raftmux (muxado v1
and v2, HTTP/2 streams for gossip and gRPC), in the manner of conch's
``SSHChannel`` over ``SSHConnection``.

A ``StreamTransport`` is what the protocol on a stream sees: an
``ITransport`` whose ``write`` never blocks (bytes beyond the send window
wait here and pause a registered producer), with ``IConsumer`` (push and
pull producers), ``IPushProducer`` (``pauseProducing`` stops delivery, and
because received bytes are credited back to the peer only once delivered,
the peer's window bounds what waits here), half-close both ways for
``IHalfCloseableProtocol``s, and ``connectionLost`` delivered after the call
that closed the stream returns, as TCP does.

The multiplexer underneath is the stream's *host* (``IStreamHost``): it
frames what the base hands it, within the window it knows, and reports back
through the base's public methods (``dataReceived``, ``readEnded``,
``windowOpened``, ``streamLost``).  Neither side reads the other's private
state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from twisted.internet.error import ConnectionAborted
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IHalfCloseableProtocol,
    IProducer,
    IProtocol,
    IPushProducer,
    ITransport,
)
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

__all__ = ["HIGH_WATER", "IStreamHost", "StreamTransport"]

# A registered streaming producer is paused while this many bytes wait for
# send window, like a TCP transport's 64 KiB buffer.
HIGH_WATER = 65536

# Queued bytes are framed and flushed this many at a time, so the transport
# can push back between pieces and the host pick the next stream.
QUANTUM = 65536

# Pull producers get at most this many resumeProducing calls in one go before
# the stream yields to the reactor.
_PULL_BURST = 64

_OPEN, _CLOSING, _HALF_CLOSING, _WRITE_CLOSED = range(4)


class IStreamHost(Interface):
    """
    The multiplexer a ``StreamTransport`` runs on: a muxado session, an
    HTTP/2 connection.  It owns the framing and the windows; the stream owns
    the buffering and the protocol above.
    """

    def sendStreamData(stream, data):
        """
        Frame as much of ``data`` as ``stream``'s send window allows and
        return how many bytes were taken (0 when the window is shut).  The
        stream keeps the rest until ``stream.windowOpened()``.
        """

    def creditStream(stream, count):
        """``count`` received bytes were delivered: give the peer its window back."""

    def endStream(stream):
        """
        Half-close: the stream will send nothing more (FIN, END_STREAM).
        Returns True if the stream is now closed both ways.
        """

    def closeStream(stream):
        """The stream is done both ways (FIN if not sent; nothing more is read)."""

    def resetStream(stream):
        """Abort the stream (RST, RST_STREAM), dropping what is queued."""

    def flush():
        """Write what the calls above framed to the underlying transport."""

    def isWritable():
        """False while the underlying transport pushes back."""

    def setWaiting(stream, waiting):
        """
        ``stream`` has (True) or no longer has (False) queued bytes or a
        registered producer, and wants ``windowOpened`` when the underlying
        transport resumes.
        """

    def streamGone(stream):
        """``stream`` is closed; forget it."""

    def callSoon(f, *args):
        """Call ``f(*args)`` soon, but never from inside the current call."""

    def getPeer():
        """The underlying transport's peer address."""

    def getHost():
        """The underlying transport's local address."""


@implementer(ITransport, IConsumer, IPushProducer)
class StreamTransport:
    """
    One stream of a multiplexed connection, as a Twisted transport.

    ``host`` provides ``IStreamHost``; ``streamId`` is the stream's ID on the
    wire.  ``priority`` orders queued streams when the underlying transport
    pushes back (larger first; see ``IStreamHost.setWaiting``).

    Subclasses that frame their payload (ckit's gossip ``/stream``) override
    ``frameOutgoing`` and ``deliverIncoming``/``endIncoming``.
    """

    priority = 0
    streamType: int | None = None

    def __init__(self, host: IStreamHost, streamId: int) -> None:
        self.host = host
        self.streamId = streamId
        self.protocol: IProtocol | None = None  # until attach()
        self._halfCloseable: Any = None
        self.connected = False
        self.disconnecting = False
        self.disconnected = False
        self._writeState = _OPEN
        self._readClosed = False
        self._pending: deque[Any] = deque()
        self._headOffset = 0
        self._pendingSize = 0
        self._waiting = False
        self._producer: Any = None    # IPushProducer or IPullProducer
        self._streaming = True
        self._producerPaused = False
        self._pulling = False
        self._readPaused = False
        self._inbox: deque[Any] = deque()
        self._eofPending = False
        self._held = False
        self._lostReason: Any = None  # the Failure, once disconnected

    def __repr__(self):
        return "<%s %d>" % (self.__class__.__name__, self.streamId)

    # -- wiring ---------------------------------------------------------------------

    def attach(self, protocol: IProtocol) -> None:
        """Connect ``protocol`` and give it whatever arrived before it was chosen."""
        self.protocol = protocol
        # Asked once (closes need it), and with providedBy as Twisted's TCP
        # does: an adaptation consults the adapter hooks for every protocol
        # that does not provide it.
        self._halfCloseable = protocol if IHalfCloseableProtocol.providedBy(protocol) else None
        self.connected = not self.disconnected
        protocol.makeConnection(self)
        if self.disconnected:
            # Lost before anyone took it: the protocol still hears why.
            protocol.connectionLost(self._lostReason)
            return
        if (self._inbox or self._eofPending) and not self._readPaused and not self._held:
            self._drainInbox()

    def hold(self) -> None:
        """
        Keep received bytes here, undelivered and uncredited, until
        ``release()`` (a host reading a stream type from the first bytes).
        """
        self._held = True

    def release(self) -> None:
        self._held = False

    @property
    def producer(self) -> IProducer | None:
        """The registered producer, or None (as on Twisted's own transports)."""
        return self._producer

    @property
    def writeOpen(self) -> bool:
        """May the protocol still write (not closed or half-closed for writing)?"""
        return self._writeState == _OPEN and not self.disconnected

    @property
    def bufferedBytes(self) -> int:
        """Bytes received and not yet delivered to the protocol."""
        return sum(len(data) for data, _ in self._inbox)

    @property
    def pendingBytes(self) -> int:
        """Bytes written and not yet framed (waiting for window or the transport)."""
        return self._pendingSize

    def receivedSoFar(self) -> bytes:
        """Bytes received and not yet delivered (the inbox), joined."""
        return b"".join(data for data, _ in self._inbox)

    @property
    def peerEnded(self) -> bool:
        """Has the peer's FIN arrived and not yet been delivered?"""
        return self._eofPending

    def consumeReceived(self, count: int) -> None:
        """
        Take ``count`` bytes off the front of the inbox without delivering
        them (a stream-type prefix), crediting them to the peer.
        """
        head = self.receivedSoFar()
        self._inbox.clear()
        if len(head) > count:
            self._inbox.append((head[count:], len(head) - count))
        self.host.creditStream(self, count)

    # -- ITransport -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._writeState != _OPEN or self.disconnected or not data:
            return
        data = self.frameOutgoing(data)
        if self._pending or not self.host.isWritable():
            self._queue(data)
        else:
            host = self.host
            sent = host.sendStreamData(self, data)
            host.flush()
            if sent < len(data):
                self._queue(data, sent)
        if self._producer is not None:
            self._updateProducer(writing=True)

    def writeSequence(self, iovec: Iterable[bytes]) -> None:
        self.write(b"".join(iovec))

    def loseConnection(self) -> None:
        """Finish sending what is buffered, then close the stream both ways."""
        self._closeWrite(_CLOSING)

    def loseWriteConnection(self) -> None:
        """Half-close: end our half after the buffered bytes; reading goes on."""
        self._closeWrite(_HALF_CLOSING)

    def abortConnection(self) -> None:
        """Drop buffered bytes and reset the stream."""
        if self.disconnected:
            return
        self.host.resetStream(self)
        self.host.flush()
        self._lost(Failure(ConnectionAborted()), later=True)

    def getPeer(self) -> IAddress:
        return self.host.getPeer()

    def getHost(self) -> IAddress:
        return self.host.getHost()

    # -- IConsumer --------------------------------------------------------------------

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        if self._producer is not None:
            raise RuntimeError("Cannot register producer %s, because producer %s was "
                               "never unregistered." % (producer, self._producer))
        if self.disconnected:
            producer.stopProducing()
            return
        self._producer = producer
        self._streaming = streaming
        self._producerPaused = False
        self._setWaiting()
        if streaming:
            self._updateProducer()
        else:
            self._pull()

    def unregisterProducer(self) -> None:
        self._producer = None
        self._setWaiting()
        if self._writeState in (_CLOSING, _HALF_CLOSING) and not self._pending:
            self._finishWrite()

    # -- IPushProducer (delivery of received bytes to the protocol) -------------------

    def pauseProducing(self) -> None:
        self._readPaused = True

    def resumeProducing(self) -> None:
        if not self._readPaused or self.disconnected:
            return
        self._readPaused = False
        if not self._held:
            self._drainInbox()

    def stopProducing(self) -> None:
        self.loseConnection()

    # -- framing hooks for subclasses -------------------------------------------------

    def frameOutgoing(self, data: bytes) -> bytes:
        """The bytes that carry ``data`` on the wire (default: ``data`` itself)."""
        return data

    def deliverIncoming(self, data: bytes) -> None:
        """Hand received wire bytes to the protocol (default: as they are)."""
        self.protocol.dataReceived(data)  # type: ignore[union-attr]

    def endIncoming(self) -> None:
        """The peer's half ended; a framing subclass checks nothing is left over."""

    # -- events from the host -------------------------------------------------------

    def dataReceived(self, data: bytes, credit: int | None = None) -> None:
        """
        The peer sent ``data``; ``credit`` bytes of window (default
        ``len(data)``; HTTP/2 counts padding too) go back once it is delivered.
        """
        if credit is None:
            credit = len(data)
        if self._readPaused or self._inbox or self.protocol is None or self._held:
            self._inbox.append((data, credit))
            return
        self.deliverIncoming(data)
        if not self.disconnected:
            self.host.creditStream(self, credit)

    def readEnded(self) -> None:
        """The peer half-closed (FIN / END_STREAM)."""
        if self._inbox or self._readPaused or self.protocol is None or self._held:
            self._eofPending = True
            return
        self._deliverEof()

    def windowOpened(self) -> None:
        """
        The peer gave credit back, or the transport resumed: send what waits,
        a quantum at a time, while the window and the transport allow (so a
        host can interleave streams by priority).
        """
        if not self._pending:
            self._updateProducer()
            return
        host = self.host
        pending = self._pending
        while pending and host.isWritable():
            head = pending[0]
            offset = self._headOffset
            piece = head[offset:offset + QUANTUM]
            sent = host.sendStreamData(self, piece)
            if sent == 0:
                break
            host.flush()
            self._pendingSize -= sent
            offset += sent
            if offset == len(head):
                pending.popleft()
                self._headOffset = 0
            else:
                self._headOffset = offset
                if sent < len(piece):
                    break
        if not pending:
            self._setWaiting()
            if self._writeState in (_CLOSING, _HALF_CLOSING):
                self._finishWrite()
                return
        self._updateProducer()

    def peerWillNotRead(self) -> None:
        """
        The peer opened this stream declaring it will never read (Go v1's
        SYN|FIN): our half is closed from the start, and writes are dropped.
        """
        if self._writeState != _OPEN or self.disconnected:
            return
        self._writeState = _WRITE_CLOSED
        self._pending.clear()
        self._pendingSize = 0
        self._setWaiting()
        halfCloseable = self._halfCloseable
        if halfCloseable is not None:
            halfCloseable.writeConnectionLost()

    def writabilityChanged(self) -> None:
        """The underlying transport paused or resumed: pause or resume our producer."""
        self._updateProducer()

    def streamLost(self, reason: Failure) -> None:
        """The stream is over without us asking (RST, session lost): tell the protocol now."""
        self._lost(reason)

    # -- sending side internals ---------------------------------------------------------

    def _queue(self, data, offset=0):
        """Keep ``data[offset:]`` to send later (``offset`` only on an empty queue)."""
        if not self._pending:
            self._headOffset = offset
        self._pending.append(data)
        self._pendingSize += len(data) - offset
        self._setWaiting()

    def _setWaiting(self):
        waiting = bool(self._pending) or self._producer is not None
        if waiting != self._waiting and not self.disconnected:
            self._waiting = waiting
            self.host.setWaiting(self, waiting)

    def _closeWrite(self, state):
        if self.disconnected:
            # Already gone (a reset, the session's end): a protocol asking to
            # close still sees ``disconnecting`` and stops handling the rest
            # of the bytes it was given (LineReceiver and twisted.web do).
            if state == _CLOSING:
                self.disconnecting = True
            return
        current = self._writeState
        if current == _OPEN:
            self._writeState = state
            self.disconnecting = state == _CLOSING
            if not self._pending:
                self._finishWrite()
        elif state == _CLOSING and current == _HALF_CLOSING:
            self._writeState = _CLOSING
            self.disconnecting = True
        elif state == _CLOSING and current == _WRITE_CLOSED:
            # Already half-closed; now stop reading too.
            self.disconnecting = True
            self.host.closeStream(self)
            self.host.flush()
            self._lost(connectionDone, later=True)

    def _finishWrite(self):
        host = self.host
        if self._writeState == _CLOSING:
            self._writeState = _WRITE_CLOSED
            host.closeStream(self)
            host.flush()
            self._lost(connectionDone, later=True)
            return
        self._writeState = _WRITE_CLOSED
        closed = host.endStream(self)
        host.flush()
        halfCloseable = self._halfCloseable
        if halfCloseable is not None:
            halfCloseable.writeConnectionLost()
        if closed or self._readClosed:
            self._lost(connectionDone, later=True)

    def _updateProducer(self, writing=False):
        producer = self._producer
        if producer is None:
            return
        if not self._streaming:
            if not writing:
                self._pull()
            return
        shouldPause = self._pendingSize >= HIGH_WATER or not self.host.isWritable()
        if shouldPause != self._producerPaused:
            self._producerPaused = shouldPause
            if shouldPause:
                producer.pauseProducing()
            else:
                producer.resumeProducing()

    def _pull(self):
        """Drive a pull producer while there is room, a bounded burst at a time."""
        if self._pulling:
            return
        self._pulling = True
        try:
            for _ in range(_PULL_BURST):
                producer = self._producer
                if (producer is None or self._streaming or self._pending
                        or not self.host.isWritable() or self.disconnected):
                    return
                producer.resumeProducing()
            if self._producer is not None and not self._streaming:
                self.host.callSoon(self._pull)
        finally:
            self._pulling = False

    # -- receiving side internals -----------------------------------------------------

    def _drainInbox(self):
        host = self.host
        inbox = self._inbox
        while inbox and not self._readPaused and not self.disconnected and not self._held:
            data, credit = inbox.popleft()
            self.deliverIncoming(data)
            if not self.disconnected:
                host.creditStream(self, credit)
        host.flush()
        if not inbox and self._eofPending and not self._readPaused and not self._held:
            self._eofPending = False
            self._deliverEof()

    def _deliverEof(self):
        if self.disconnected:
            return
        self._readClosed = True
        try:
            self.endIncoming()
        except Exception as e:
            self.host.resetStream(self)
            self.host.flush()
            self._lost(Failure(e))
            return
        halfCloseable = self._halfCloseable
        if halfCloseable is None:
            self.loseConnection()
            return
        halfCloseable.readConnectionLost()
        if self._writeState == _WRITE_CLOSED and not self.disconnected:
            self._lost(connectionDone)

    def _lost(self, reason, later=False):
        """
        Tear down and tell the protocol.  ``later`` defers the protocol's
        ``connectionLost`` past the current call, as TCP does, for closes the
        protocol itself asked for: code such as twisted.web's HTTP client sets
        state after calling ``loseConnection`` and expects no re-entry.
        """
        if self.disconnected:
            return
        self.disconnected = True
        self.connected = False
        # ``disconnecting`` stays as it was, as on TCP: a protocol that asked
        # to close (LineReceiver, twisted.web's HTTPChannel) checks it to
        # stop handling the rest of the bytes it was given.
        self._lostReason = reason
        self._writeState = _WRITE_CLOSED
        self._pending.clear()
        self._pendingSize = 0
        self._inbox.clear()
        if self._waiting:
            self._waiting = False
            self.host.setWaiting(self, False)
        self.host.streamGone(self)
        producer = self._producer
        if producer is not None:
            self._producer = None
            producer.stopProducing()
        protocol = self.protocol
        if protocol is not None:
            if later:
                self.host.callSoon(protocol.connectionLost, reason)
            else:
                protocol.connectionLost(reason)
        self.connectionClosed(reason)

    def connectionClosed(self, reason: Failure) -> None:
        """Called once the stream is closed, whatever the cause (subclasses: metrics)."""
