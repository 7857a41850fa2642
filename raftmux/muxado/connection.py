"""
The muxado session as a sans-IO state machine.

``MuxadoConnection`` knows stream IDs, stream states and flow-control windows,
and nothing about sockets, reactors or clocks: ``receiveData(bytes)`` returns
events, the send methods queue frames, ``dataToSend()`` hands the bytes over.
It follows Go's v2 behaviour (spec sections 5-7) wherever a Go peer would
notice, and refuses Go's known bugs (SYN+FIN on an opening frame, replies
after GOAWAY) where copying them would break interop.
"""

from raftmux.muxado.errors import ErrorCode, ProtocolError
from raftmux.muxado.frames import (
    FLAG_FIN,
    FLAG_SYN,
    MAX_STREAM_ID,
    Data,
    FrameDecoder,
    GoAway,
    Rst,
    WndInc,
    dataHeader,
    encodeGoAway,
    encodeRst,
    encodeWndInc,
)
from raftmux.muxado.window import WindowTuner

DEFAULT_WINDOW = 0x40000  # 262,144: Go's MaxWindowSize; both peers must agree.


# -- events -------------------------------------------------------------------


class StreamOpened:
    """
    The peer opened ``streamId`` (SYN); its first frame carries ``length``
    bytes.  ``streamType`` and ``priority`` are what a v1 SYN declared (None
    when absent, and always None from v2, whose stream type travels in the
    stream's first 4 bytes instead).
    """

    __slots__ = ("streamId", "length", "streamType", "priority")

    def __init__(self, streamId, length, streamType=None, priority=None):
        self.streamId = streamId
        self.length = length
        self.streamType = streamType
        self.priority = priority


class StreamRefusedLocally:
    """A peer SYN was refused with RST ``code`` (over a limit, or after GOAWAY)."""

    __slots__ = ("streamId", "code")

    def __init__(self, streamId, code):
        self.streamId = streamId
        self.code = code


class DataReceived:
    __slots__ = ("streamId", "data")

    def __init__(self, streamId, data):
        self.streamId = streamId
        self.data = data


class StreamEnded:
    """The peer half-closed ``streamId`` (FIN)."""

    __slots__ = ("streamId",)

    def __init__(self, streamId):
        self.streamId = streamId


class StreamReset:
    """
    ``streamId`` is reset: by the peer (``remote``) or by this side because
    the peer broke the stream's rules (flow control, data after FIN).
    """

    __slots__ = ("streamId", "code", "remote")

    def __init__(self, streamId, code, remote):
        self.streamId = streamId
        self.code = code
        self.remote = remote


class WindowUpdated:
    __slots__ = ("streamId", "increment")

    def __init__(self, streamId, increment):
        self.streamId = streamId
        self.increment = increment


class GoAwayReceived:
    """
    The peer sent GOAWAY.  ``refused`` lists this side's streams above
    ``lastStreamId``: the peer never saw them, so they are safe to retry.
    """

    __slots__ = ("lastStreamId", "code", "debug", "refused")

    def __init__(self, lastStreamId, code, debug, refused):
        self.lastStreamId = lastStreamId
        self.code = code
        self.debug = debug
        self.refused = refused


class ConnectionTerminated:
    """
    The peer broke the protocol.  A GOAWAY with ``code`` is queued as the
    last frame; the shell must send it and close the transport.
    """

    __slots__ = ("code", "message")

    def __init__(self, code, message):
        self.code = code
        self.message = message


# -- per-stream state -----------------------------------------------------------


class _Stream:
    __slots__ = ("streamId", "sendWindow", "recv", "synPending",
                 "localClosed", "remoteClosed")

    def __init__(self, streamId, sendWindow, synPending):
        self.streamId = streamId
        self.sendWindow = sendWindow   # bytes we may still send
        self.recv = None               # our ReceiveWindow for the peer's data
        self.synPending = synPending   # locally opened, SYN not yet sent
        self.localClosed = False       # FIN sent
        self.remoteClosed = False      # FIN received


class _Discard:
    """Marks a DATA frame whose remaining pieces are to be thrown away."""


_DISCARD = _Discard()


class MuxadoConnection:
    """
    One side of a muxado session.

    ``client`` picks the stream-ID parity: a client opens odd IDs starting at
    3 (as Go does), a server even IDs starting at 2.  ``window`` must match
    the peer's (Go never negotiates it).  ``maxIncomingStreams`` bounds the
    streams the peer may hold open at once (further SYNs get RST
    ACCEPT_QUEUE_FULL), so a peer cannot grow memory without limit.
    """

    def __init__(self, client, window=DEFAULT_WINDOW, maxIncomingStreams=1024,
                 maxGoAwayDebug=65536, windowUpdateThreshold=None, maxWindow=None,
                 windowBudget=0):
        self.client = client
        self.window = window
        self.maxIncomingStreams = maxIncomingStreams
        self.windowUpdateThreshold = (window // 4 if windowUpdateThreshold is None
                                      else windowUpdateThreshold)
        # Receive windows may grow past ``window`` (up to ``maxWindow`` each,
        # ``windowBudget`` in all) when the peer is window-bound; see window.py.
        self._tuner = WindowTuner(window, maxWindow, windowBudget, windowUpdateThreshold)
        self._decoder = FrameDecoder(maxGoAwayDebug)
        self._streams = {}
        self._incoming = 0
        self._nextId = 1 if client else 0
        # Go reports 1 (server) or 0 (client) as last-stream-id before any
        # peer stream; a Go server's "1" covers no real client stream.
        self.lastRemoteId = 0 if client else 1
        self._out = []
        self._current = None          # stream (or _DISCARD) of the DATA frame being read
        self.goAwaySent = False
        self.goAwayReceived = None    # the GoAway frame, once received
        self.terminated = None        # ConnectionTerminated, once the peer broke the rules

    # -- queries ------------------------------------------------------------

    def isOpen(self, streamId):
        return streamId in self._streams

    def sendWindow(self, streamId):
        stream = self._streams.get(streamId)
        return 0 if stream is None else stream.sendWindow

    def streamIds(self):
        return list(self._streams)

    def isLocal(self, streamId):
        return (streamId & 1) == (1 if self.client else 0)

    # -- opening ----------------------------------------------------------------

    def openStream(self):
        """
        Allocate the next local stream ID.  Nothing is sent: like Go, the
        peer learns of the stream from its first DATA frame (SYN).  Raises
        ``ValueError`` when the ID space is used up (the caller maps it to
        StreamsExhausted).
        """
        streamId = self._nextId + 2
        if streamId > MAX_STREAM_ID:
            raise ValueError("stream IDs exhausted")
        self._nextId = streamId
        self._streams[streamId] = stream = _Stream(streamId, self.window, True)
        stream.recv = self._tuner.newWindow()
        return streamId

    # -- sending ------------------------------------------------------------------

    def sendData(self, streamId, data):
        """
        Queue as much of ``data`` as the stream's send window allows, as one
        DATA frame (with SYN if it is the stream's first).  Returns the number
        of bytes taken; the caller keeps the rest until a ``WindowUpdated``.
        """
        stream = self._streams.get(streamId)
        if stream is None or stream.localClosed or self.goAwaySent:
            return 0
        n = len(data)
        if n > stream.sendWindow:
            n = stream.sendWindow
            if n == 0:
                return 0
            data = data[:n]
        elif n == 0:
            return 0
        stream.sendWindow -= n
        if stream.synPending:
            stream.synPending = False
            self._out += (dataHeader(streamId, n, FLAG_SYN), data)
        else:
            self._out += (dataHeader(streamId, n), data)
        return n

    def endStream(self, streamId):
        """
        Half-close: send FIN.  A stream that never sent anything first sends
        an empty SYN frame, because a Go acceptor that sees SYN|FIN together
        can never write back (spec 5.2).  Returns True if the stream is now
        closed both ways (and forgotten).
        """
        stream = self._streams.get(streamId)
        if stream is None or stream.localClosed:
            return stream is None
        self._sendFin(stream)
        if stream.remoteClosed:
            self._forget(streamId)
            return True
        return False

    def closeStream(self, streamId):
        """
        Go's ``Close()``: FIN if not yet sent, then forget the stream at once;
        later DATA from the peer is answered with RST STREAM_CLOSED.
        """
        stream = self._streams.get(streamId)
        if stream is None:
            return
        if not stream.localClosed:
            self._sendFin(stream)
        self._forget(streamId)

    def _sendFin(self, stream):
        stream.localClosed = True
        if self.goAwaySent:
            return
        if stream.synPending:
            stream.synPending = False
            self._out.append(dataHeader(stream.streamId, 0, FLAG_SYN))
        self._out.append(dataHeader(stream.streamId, 0, FLAG_FIN))

    def resetStream(self, streamId, code=ErrorCode.STREAM_CANCELLED):
        """Send RST(code) and forget the stream; a never-announced stream is just dropped."""
        stream = self._streams.get(streamId)
        if stream is None:
            return
        if not stream.synPending:
            self._queueRst(streamId, code)
        self._forget(streamId)

    def acknowledgeReceivedData(self, streamId, n):
        """
        The application has taken ``n`` bytes of ``streamId``: give the credit
        back once a quarter of the window (by default) is owed.  Go credits
        every read; batching is safe because the peer only adds increments.
        """
        stream = self._streams.get(streamId)
        if stream is None or stream.remoteClosed:
            return
        increment = stream.recv.consume(n, self._tuner)
        if increment:
            if not self.goAwaySent:
                self._out.append(encodeWndInc(streamId, increment))

    def goAway(self, code=ErrorCode.NO_ERROR, debug=b""):
        """
        Queue GOAWAY as the very last frame of the session: a Go peer reads 8
        bytes past a GOAWAY's end (spec 4.4), so the shell must close the
        transport right after sending it.  Later SYNs are refused with RST 5.
        """
        if self.goAwaySent:
            return
        self._out.append(encodeGoAway(self.lastRemoteId, code, debug))
        self.goAwaySent = True

    def dataToSend(self):
        out = self._out
        self._out = []
        return out

    def hasDataToSend(self):
        return bool(self._out)

    # -- receiving ---------------------------------------------------------------

    def receiveData(self, data):
        """
        Feed bytes from the peer; returns the events they complete.  A protocol
        violation ends with a ``ConnectionTerminated`` event (GOAWAY queued);
        nothing after it is processed.
        """
        if self.terminated is not None:
            return []
        events = []
        try:
            frames = self._decoder.receiveData(data)
        except ProtocolError as e:
            frames = None
            error = e
        else:
            error = None
        try:
            for frame in frames or ():
                if frame.__class__ is Data:
                    self._onData(frame, events)
                elif frame.__class__ is WndInc:
                    stream = self._streams.get(frame.streamId)
                    if stream is not None:
                        stream.sendWindow += frame.increment
                        events.append(WindowUpdated(frame.streamId, frame.increment))
                elif frame.__class__ is Rst:
                    if self._forget(frame.streamId):
                        events.append(StreamReset(frame.streamId, frame.code, True))
                elif frame.__class__ is GoAway:
                    self._onGoAway(frame, events)
                # Unknown frame types: skipped (spec 4.5).
        except ProtocolError as e:
            error = e
        if error is not None:
            self.terminate(error.code, str(error))
            events.append(self.terminated)
        return events

    def terminate(self, code, message):
        """End the session because of ``code``: queue GOAWAY, refuse all further input."""
        self.terminated = ConnectionTerminated(code, message)
        self.goAway(code, message.encode("utf-8", "replace"))

    def _onData(self, frame, events):
        if frame.first:
            stream = self._startData(frame, events)
            if frame.last:
                self._current = None
            else:
                self._current = stream
        else:
            stream = self._current
            if frame.last:
                self._current = None
        if stream is None or stream is _DISCARD:
            return
        data = frame.data
        if data:
            events.append(DataReceived(frame.streamId, data))
        if frame.last and frame.flags & FLAG_FIN:
            stream.remoteClosed = True
            events.append(StreamEnded(frame.streamId))
            if stream.localClosed:
                self._forget(frame.streamId)

    def _startData(self, frame, events):
        """Checks made once per DATA frame, on its header; returns the stream or _DISCARD."""
        streamId = frame.streamId
        length = frame.length
        if frame.flags & FLAG_SYN:
            if self.isLocal(streamId):
                raise ProtocolError("SYN on stream %d, which has this side's parity" % (streamId,))
            if streamId in self._streams:
                raise ProtocolError("duplicate SYN for open stream %d" % (streamId,))
            if self.goAwaySent or self._incoming >= self.maxIncomingStreams:
                code = (ErrorCode.STREAM_REFUSED if self.goAwaySent
                        else ErrorCode.ACCEPT_QUEUE_FULL)
                self._queueRst(streamId, code)
                events.append(StreamRefusedLocally(streamId, code))
                return _DISCARD
            self.lastRemoteId = streamId
            stream = _Stream(streamId, self.window, False)
            stream.recv = self._tuner.newWindow()
            self._streams[streamId] = stream
            self._incoming += 1
            events.append(StreamOpened(streamId, length))
        else:
            stream = self._streams.get(streamId)
            if stream is None:
                # Unknown or forgotten stream: an empty FIN is ignored, anything
                # else is answered with RST STREAM_CLOSED (spec 5.5).
                if length or not frame.flags & FLAG_FIN:
                    self._queueRst(streamId, ErrorCode.STREAM_CLOSED)
                return _DISCARD
            if stream.synPending:
                # The peer sends data on a stream we have not announced yet.
                self._resetLocally(stream, ErrorCode.STREAM_CLOSED, events)
                return _DISCARD
            if stream.remoteClosed:
                if length == 0:
                    return _DISCARD  # Go repeats empty FINs; tolerate them.
                self._resetLocally(stream, ErrorCode.STREAM_CLOSED, events)
                return _DISCARD
        if not stream.recv.receive(length):
            self._resetLocally(stream, ErrorCode.FLOW_CONTROL_ERROR, events)
            return _DISCARD
        return stream

    def _resetLocally(self, stream, code, events):
        self._queueRst(stream.streamId, code)
        self._forget(stream.streamId)
        events.append(StreamReset(stream.streamId, code, False))

    def _onGoAway(self, frame, events):
        self.goAwayReceived = frame
        refused = [streamId for streamId in self._streams
                   if self.isLocal(streamId) and streamId > frame.lastStreamId]
        for streamId in refused:
            self._forget(streamId)
        events.append(GoAwayReceived(frame.lastStreamId, frame.code, frame.debug, refused))

    def _queueRst(self, streamId, code):
        if not self.goAwaySent:
            self._out.append(encodeRst(streamId, code))

    def _forget(self, streamId):
        """Drop a stream, returning its window growth to the session; True if it was here."""
        stream = self._streams.pop(streamId, None)
        if stream is None:
            return False
        self._tuner.release(stream.recv)
        self._countClosed(streamId)
        return True

    def _countClosed(self, streamId):
        if not self.isLocal(streamId):
            self._incoming -= 1
