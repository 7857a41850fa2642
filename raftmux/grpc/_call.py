# -*- test-case-name: raftmux.test.test_grpc_server -*-
"""
What a server call and a client call have in common: one HTTP/2 stream
(an ``H2Stream``, the transport) carrying length-prefixed protobuf
messages both ways, with back-pressure both ways.

Receiving: DATA bytes go through a ``MessageDecoder``; whole messages wait
in an inbox until a reader takes them (``receive()`` / ``async for``) or a
push receiver is given them.  While the inbox is full, or the reader paused
us (``pauseProducing``), the stream is paused: its bytes are then not
credited, so the peer's flow-control window closes.  Partial messages the
decoder keeps are counted against the connection (``holdBytes``).

Sending: ``sendMessage`` writes at once (the stream queues what its window
does not take); ``send`` does the same and returns a Deferred that fires
when the stream has room again; a registered push producer is paused and
resumed by the stream.
"""

from collections import deque
from typing import Any

from google.protobuf.message import DecodeError
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from raftmux.grpc.status import Code, GRPCError
from raftmux.grpc.wire import DEFAULT_MAX_MESSAGE_SIZE, MessageDecoder, encodeMessage
from raftmux.streamtransport import HIGH_WATER

__all__ = ["CallBase", "MAX_INBOX"]

#: decoded messages a reader may leave waiting before the stream is paused
MAX_INBOX = 16


@implementer(IPushProducer)
class _Gate:
    """
    Registered on the stream as a push producer on behalf of its call: the
    stream pauses it when its send queue is full, and it tells the call.
    """

    __slots__ = ("call",)

    def __init__(self, call):
        self.call = call

    def pauseProducing(self):
        self.call._outboundPaused(True)

    def resumeProducing(self):
        self.call._outboundPaused(False)

    def stopProducing(self):
        self.call._outboundStopped()


class CallBase:
    """
    The message plumbing of one call.  ``messageClass`` is what received
    payloads decode to; ``maxReceiveMessageSize`` bounds one received
    message.  Subclasses feed ``decodeMessages``' results to ``enqueue``
    (or handle them themselves), call ``endOfMessages`` when the peer
    half-closes and ``closeChannel`` at the end, and implement ``cancel``.
    """

    # Scalar state starts at these class-level values (one unary call
    # touches few of them; not assigning them all per call is measurable).
    transport: Any = None
    _held = 0
    _receiver = None
    _ended = False          # the peer sent its last message
    _endDelivered = False
    _readPaused = False     # the reader asked us to pause
    _streamPaused = False   # we paused the stream
    _delivering = False
    _closed = False
    _gate = None
    _outPaused = False
    _producer = None

    _decoder: Any = None     # made when a message arrives split or with others
    finished = False        # the call is over (subclasses set it)

    def __init__(self, messageClass, maxReceiveMessageSize=DEFAULT_MAX_MESSAGE_SIZE):
        self._messageClass = messageClass
        self._maxSize = maxReceiveMessageSize
        self._inbox: deque[Any] = deque()
        self._readers: deque[Deferred[Any]] = deque()
        self._sendWaiters: list[Deferred[None]] = []

    # -- receiving --------------------------------------------------------------

    def _fail(self, error):
        """End the call with ``error`` (a ``GRPCError``): each side's own way."""
        raise NotImplementedError

    def receivedMessages(self, data):
        """
        ``decodeMessages(data)`` for a call still going: the messages, or an
        empty list when there are none yet, the call is over, or they broke
        its rules (the call then fails with the ``GRPCError``).
        """
        if self.finished:
            return []
        try:
            return self.decodeMessages(data)
        except GRPCError as e:
            self._fail(e)
            return []

    def decodeMessages(self, data):
        """
        The messages (parsed) that ``data`` completes.  Raises ``GRPCError``
        for an oversized, compressed or unparseable message.
        """
        decoder = self._decoder
        if decoder is None:
            # The usual case: one whole, small, uncompressed message in one
            # piece (a unary request or response): no decoder needed.
            n = len(data)
            if n >= 5 and data[0] == 0 and n - 5 <= self._maxSize and \
                    int.from_bytes(data[1:5], "big") == n - 5:
                try:
                    return [self._messageClass.FromString(data[5:])]
                except DecodeError as e:
                    raise GRPCError(Code.INTERNAL,
                                    "grpc: error unmarshalling message: %s" % (e,))
            decoder = self._decoder = MessageDecoder(self._maxSize)
        try:
            frames = decoder.feed(data)
        except GRPCError as e:
            # The messages before the bad prefix are judged first, as they
            # would be had they come in a read of their own: the status
            # names the first problem in the stream, however it was cut.
            self._parse(getattr(e, "decoded", ()))
            raise
        messages = self._parse(frames)
        held = decoder.buffered
        if held != self._held:
            delta, self._held = held - self._held, held
            if not self.transport.host.holdBytes(delta) and delta > 0:
                raise GRPCError(Code.RESOURCE_EXHAUSTED,
                                "grpc: too many bytes held for partial messages")
        return messages

    def _parse(self, frames):
        """The ``(flag, payload)`` pairs as messages; ``GRPCError`` at the first bad one."""
        out = []
        parse = self._messageClass.FromString
        for flag, payload in frames:
            if flag:
                if flag == 1:
                    raise GRPCError(Code.UNIMPLEMENTED, self.compressedMessageError())
                raise GRPCError(Code.INTERNAL,
                                "grpc: received unexpected payload format %d" % (flag,))
            try:
                out.append(parse(payload))
            except DecodeError as e:
                raise GRPCError(Code.INTERNAL, "grpc: error unmarshalling message: %s" % (e,))
        return out

    def compressedMessageError(self):
        return "grpc: compressed messages are not supported (no decompressor installed)"

    @property
    def partialMessage(self):
        """Is a message cut off at the end of what was received?"""
        return self._decoder is not None and not self._decoder.atBoundary

    def releaseHeld(self):
        """Give back what the decoder held (the call is over)."""
        if self._held and self.transport is not None:
            self.transport.host.holdBytes(-self._held)
        self._held = 0

    def enqueue(self, messages):
        self._inbox.extend(messages)
        self._deliver()

    def endOfMessages(self):
        """The peer half-closed: readers get ``None`` once the inbox is empty."""
        self._ended = True
        self._deliver()

    def setReceiver(self, receiver):
        """Push delivery: ``receiver.receive(m)`` per message, ``requestsDone()`` at the end."""
        self._receiver = receiver
        self._deliver()

    def _deliver(self):
        if self._delivering:
            return
        self._delivering = True
        try:
            inbox = self._inbox
            while inbox and not self._readPaused and not self._closed:
                receiver = self._receiver
                if receiver is not None:
                    receiver.receive(inbox.popleft())
                elif self._readers:
                    self._readers.popleft().callback(inbox.popleft())
                else:
                    break
            if (self._ended and not inbox and not self._endDelivered and not self._closed
                    and not self._readPaused):
                receiver = self._receiver
                if receiver is not None:
                    self._endDelivered = True
                    receiver.requestsDone()
                elif self._readers:
                    self._endDelivered = True
                    readers, self._readers = self._readers, deque()
                    for d in readers:
                        d.callback(None)
        finally:
            self._delivering = False
        self._updateStreamPause()

    def _updateStreamPause(self):
        transport = self.transport
        if transport is None or self._closed:
            return
        want = self._readPaused or len(self._inbox) >= MAX_INBOX
        if want != self._streamPaused:
            self._streamPaused = want
            if want:
                transport.pauseProducing()
            else:
                transport.resumeProducing()

    def receive(self):
        """
        A Deferred firing with the next received message, or ``None`` after
        the last one.  (On a failed client call it fails with the
        ``GRPCError``; on a server call that was cancelled, with
        ``CancelledError``.)
        """
        if self._inbox and not self._readPaused and self._receiver is None:
            message = self._inbox.popleft()
            self._updateStreamPause()
            return succeed(message)
        if self._endDelivered or (self._ended and not self._inbox):
            self._endDelivered = True
            return succeed(None)
        failure = self.receiveFailure()
        if failure is not None:
            return fail(failure)
        d: Deferred[Any] = Deferred(self._readers.remove)
        self._readers.append(d)
        return d

    def receiveFailure(self):
        """Why ``receive()`` cannot wait (the call is over), or None."""
        return None

    def failReaders(self, failure):
        readers, self._readers = self._readers, deque()
        for d in readers:
            d.errback(failure)

    def __aiter__(self):
        return self

    async def __anext__(self):
        message = await self.receive()
        if message is None:
            raise StopAsyncIteration
        return message

    # -- IPushProducer (of received messages, for the reader) ---------------------

    def pauseProducing(self):
        """Stop delivering received messages (the peer's window closes)."""
        self._readPaused = True
        self._updateStreamPause()

    def resumeProducing(self):
        if not self._readPaused:
            return
        self._readPaused = False
        self._deliver()

    def stopProducing(self):
        """(``IPushProducer``) The reader gives up: the same as cancelling."""
        self.cancel()

    def cancel(self):
        raise NotImplementedError()

    # -- sending ----------------------------------------------------------------

    def writeMessage(self, message):
        """Frame and write ``message`` (the caller checked the call may send)."""
        payload = message.SerializeToString()
        self.transport.write(encodeMessage(payload))

    @property
    def congested(self):
        """Is the stream's send queue at its high-water mark?"""
        transport = self.transport
        return transport is not None and (self._outPaused or transport.pendingBytes >= HIGH_WATER)

    def waitWritable(self):
        """A Deferred firing once the stream takes more (at once if it does now)."""
        if not self.congested or self._closed:
            return succeed(None)
        d: Deferred[None] = Deferred(self._sendWaiters.remove)
        self._sendWaiters.append(d)
        self._ensureGate()
        return d

    def registerProducer(self, producer, streaming):
        """
        ``IConsumer``: ``producer`` (a push producer) is paused while the
        stream's send queue is full and resumed when it drains.
        """
        if not streaming:
            raise ValueError("gRPC calls take push producers only")
        if self._closed:
            producer.stopProducing()
            return
        self._producer = producer
        self._ensureGate()
        if self._outPaused:
            producer.pauseProducing()

    def unregisterProducer(self):
        self._producer = None
        if not self._sendWaiters:
            self._dropGate()

    def _ensureGate(self):
        transport = self.transport
        if self._gate is None and transport is not None and not transport.disconnected:
            self._gate = _Gate(self)
            transport.registerProducer(self._gate, True)

    def _dropGate(self):
        gate, self._gate = self._gate, None
        if gate is not None and self.transport is not None and \
                self.transport.producer is gate:
            self.transport.unregisterProducer()
        self._outPaused = False

    def _outboundPaused(self, paused):
        self._outPaused = paused
        producer = self._producer
        if paused:
            if producer is not None:
                producer.pauseProducing()
            return
        waiters, self._sendWaiters = self._sendWaiters, []
        for d in waiters:
            d.callback(None)
        if self._producer is not None:
            self._producer.resumeProducing()
        elif not self._sendWaiters:
            self._dropGate()

    def _outboundStopped(self):
        self._gate = None
        self._wakeSenders()
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.stopProducing()

    def _wakeSenders(self):
        waiters, self._sendWaiters = self._sendWaiters, []
        for d in waiters:
            d.callback(None)

    # -- the end ------------------------------------------------------------------

    def closeChannel(self):
        """
        No more messages either way: stop the gate (without telling the
        producer: the call ended normally), wake senders, give back held
        bytes.
        """
        self._closed = True
        self._producer = None
        if self._gate is not None:
            self._dropGate()
        if self._sendWaiters:
            self._wakeSenders()
        if self._held:
            self.releaseHeld()
        if self._inbox:
            self._inbox.clear()


def isCancellation(failure):
    return failure.check(CancelledError) is not None
