"""
The muxado generation-1 session as a sans-IO state machine.

``MuxadoV1Connection`` has the public surface of v2's ``MuxadoConnection``
and emits exactly its event classes, so one Twisted session shell can host
either generation; error codes in its API and events are the semantic
``ErrorCode``s, translated to v1 wire numbers by ``v1frames``.  It follows
Go v1's ``proto/session.go`` and ``proto/stream.go`` (spec Appendix A and
15.2) wherever a Go peer would notice:

* a stream is opened by an explicit SYN, sent at once by ``openStream``;
  client IDs are 3, 5, ..., server IDs 2, 4, ...;
* a SYN of the wrong parity or with an ID not above the last peer SYN, and
  any frame naming an ID above the highest used or seen for its parity, are
  protocol errors that end the session;
* windows are 64 KiB each way; an overrun gets RST FLOW_CONTROL_ERROR; DATA
  for a stream we do not have gets RST STREAM_CLOSED; RST and WNDINC for such
  streams are ignored;
* unlike v2 a GOAWAY does not have to be the last frame (Go v1 reads our
  correct GOAWAY exactly), so after ``goAway`` existing streams carry on and
  a peer SYN is answered with RST REFUSED_STREAM.  Only ``terminate`` (a
  rule break) silences the connection.  A received GOAWAY is acted on at
  once; what follows it is read only if it declared no debug text (see
  ``v1frames.FrameDecoder``: Go v1's own GOAWAY is short and ambiguous).

Go's "FIN on SYN backwards" quirk: Go's ``OpenStream(..., fin=true)`` closes
the opener's *receive* half while still sending SYN|FIN, and a Go acceptor
that reads SYN|FIN closes its own *send* half and keeps reading (it never
reports end-of-stream for that FIN).  So on the wire SYN|FIN means "the opener
will not read".  We do what a Go acceptor does: such a stream starts with our
send half closed (``canSend`` is False, ``sendData`` takes nothing, no FIN is
ever sent for it) and its receive half open until a later DATA FIN.  We never
send SYN|FIN ourselves: ``openStream`` has no FIN, and ``endStream`` sends a
separate empty DATA FIN, as Go's ``HalfClose`` does.

Heartbeats are not in here: Go v1's heartbeat is an ordinary stream of type
``HEARTBEAT_TYPE`` (priority ``HEARTBEAT_PRIORITY``) that the shell opens and
answers.
"""

from raftmux.muxado.connection import (
    ConnectionTerminated,
    DataReceived,
    GoAwayReceived,
    StreamEnded,
    StreamOpened,
    StreamRefusedLocally,
    StreamReset,
    WindowUpdated,
)
from raftmux.muxado.errors import ErrorCode, ProtocolError
from raftmux.muxado.frames import GoAway as GoAwayInfo
from raftmux.muxado.v1frames import (
    FLAG_FIN,
    MAX_GOAWAY_DEBUG,
    MAX_LENGTH,
    MAX_STREAM_ID,
    Data,
    FrameDecoder,
    GoAway,
    Rst,
    Syn,
    WndInc,
    dataHeader,
    encodeGoAway,
    encodeRst,
    encodeSyn,
    encodeWndInc,
    fromWireCode,
    toWireCode,
)
from raftmux.muxado.window import WindowTuner

DEFAULT_WINDOW = 0x10000  # 65,536: Go v1's defaultWindowSize; both peers must agree.


class _Stream:
    __slots__ = ("streamId", "sendWindow", "recv", "localClosed",
                 "remoteClosed")

    def __init__(self, streamId, sendWindow, localClosed=False):
        self.streamId = streamId
        self.sendWindow = sendWindow   # bytes we may still send
        self.recv = None               # our ReceiveWindow for the peer's data
        self.localClosed = localClosed  # FIN sent (or the peer's SYN|FIN said it won't read)
        self.remoteClosed = False      # FIN received


class _Discard:
    """Marks a DATA frame whose remaining pieces are to be thrown away."""


_DISCARD = _Discard()


class MuxadoV1Connection:
    """
    One side of a muxado v1 session.

    ``client`` picks the stream-ID parity.  ``window`` must match the peer's
    (Go v1 never negotiates it: 65,536).  ``maxIncomingStreams`` bounds the
    streams the peer may hold open at once (further SYNs get RST
    REFUSED_STREAM; the event says ACCEPT_QUEUE_FULL), so a peer cannot grow
    memory without limit.  Go v1 itself has no such limit: its reader blocks
    once 100 streams wait to be accepted.
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
        # The last ID used for each parity.  Go starts a client's own counter
        # at 1 and a server's at 0 (first streams 3 and 2), and a server's
        # "last remote ID" at 1, so a client SYN on 1 is refused as too low.
        self._lastLocalId = 1 if client else 0
        self._lastRemoteSyn = 0 if client else 1
        # The last peer stream taken in: what our GOAWAY reports.
        self.lastRemoteId = 0 if client else 1
        self._out = []
        self._current = None          # stream (or _DISCARD) of the DATA frame being read
        self.goAwaySent = False
        self.goAwayDebugSent = b""       # the debug text of our GOAWAY (kept local)
        self.goAwayReceived = None    # .lastStreamId, .code (ErrorCode), .debug, once received
        self.terminated = None        # ConnectionTerminated, once the session ended on an error

    # -- queries --------------------------------------------------------------------

    def isOpen(self, streamId):
        return streamId in self._streams

    def sendWindow(self, streamId):
        stream = self._streams.get(streamId)
        return 0 if stream is None else stream.sendWindow

    def canSend(self, streamId):
        """Is the stream's send half open (known, no FIN sent, not opened with SYN|FIN)?"""
        stream = self._streams.get(streamId)
        return stream is not None and not stream.localClosed

    def streamIds(self):
        return list(self._streams)

    def isLocal(self, streamId):
        return (streamId & 1) == (1 if self.client else 0)

    # -- opening --------------------------------------------------------------------

    def openStream(self, streamType=None, priority=None):
        """
        Allocate the next local stream ID and queue its SYN at once (Go v1's
        ``OpenStream``), with the TYPE and PRIORITY fields only when given and
        non-zero (a v1 receiver reads an absent field as 0).  Raises
        ``ValueError`` when the ID space is used up (the caller maps it to
        StreamsExhausted) or a field is out of range.
        """
        streamId = self._lastLocalId + 2
        if streamId > MAX_STREAM_ID:
            raise ValueError("stream IDs exhausted")
        syn = encodeSyn(streamId, priority, streamType)
        self._lastLocalId = streamId
        self._streams[streamId] = stream = _Stream(streamId, self.window)
        stream.recv = self._tuner.newWindow()
        self._queue(syn)
        return streamId

    # -- sending --------------------------------------------------------------------

    def sendData(self, streamId, data):
        """
        Queue as much of ``data`` as the stream's send window allows, as DATA
        frames of at most 16,383 bytes.  Returns the number of bytes taken;
        the caller keeps the rest until a ``WindowUpdated``.
        """
        stream = self._streams.get(streamId)
        if stream is None or stream.localClosed or self.terminated is not None:
            return 0
        n = len(data)
        if n > stream.sendWindow:
            n = stream.sendWindow
        if n == 0:
            return 0
        stream.sendWindow -= n
        out = self._out
        if n <= MAX_LENGTH:
            out += (dataHeader(streamId, n), data if n == len(data) else data[:n])
            return n
        view = memoryview(data)
        for start in range(0, n, MAX_LENGTH):
            piece = bytes(view[start:min(start + MAX_LENGTH, n)])
            out += (dataHeader(streamId, len(piece)), piece)
        return n

    def endStream(self, streamId):
        """
        Half-close: send an empty DATA FIN.  Returns True if the stream is now
        closed both ways (and forgotten).
        """
        stream = self._streams.get(streamId)
        if stream is None or stream.localClosed:
            return stream is None
        stream.localClosed = True
        self._queue(dataHeader(streamId, 0, FLAG_FIN))
        if stream.remoteClosed:
            self._forget(streamId)
            return True
        return False

    def closeStream(self, streamId):
        """
        Go's ``Close()``: FIN if not yet sent, then forget the stream at once;
        later DATA from the peer is answered with RST STREAM_CLOSED, as Go does.
        """
        stream = self._streams.get(streamId)
        if stream is None:
            return
        if not stream.localClosed:
            stream.localClosed = True
            self._queue(dataHeader(streamId, 0, FLAG_FIN))
        self._forget(streamId)

    def resetStream(self, streamId, code=ErrorCode.STREAM_CANCELLED):
        """Send RST(code, as its v1 wire number) and forget the stream."""
        if self._streams.get(streamId) is None:
            return
        self._queueRst(streamId, code)
        self._forget(streamId)

    def acknowledgeReceivedData(self, streamId, n):
        """
        The application has taken ``n`` bytes of ``streamId``: give the credit
        back once ``windowUpdateThreshold`` bytes are owed.  Go v1 credits
        every read; batching is safe because its sender adds every increment,
        without a cap.
        """
        stream = self._streams.get(streamId)
        if stream is None or stream.remoteClosed:
            return
        increment = stream.recv.consume(n, self._tuner)
        if increment:
            self._queue(encodeWndInc(streamId, increment))

    def goAway(self, code=ErrorCode.NO_ERROR, debug=b""):
        """
        Queue a GOAWAY.  Later peer SYNs are refused with RST REFUSED_STREAM;
        streams already open carry on (a v1 reader needs no "last frame"
        rule).  ``debug`` stays local: the frame goes out with none (length
        8), because a reader cannot tell declared debug text from the frames
        after Go's GOAWAY, whose debug never comes, so raftmux's decoder
        reads none (see ``v1frames.FrameDecoder``).
        """
        if self.goAwaySent:
            return
        self.goAwaySent = True
        self.goAwayDebugSent = bytes(debug[:MAX_GOAWAY_DEBUG])
        self._out.append(encodeGoAway(self.lastRemoteId, toWireCode(code)))

    def terminate(self, code, message):
        """End the session because of ``code``: queue GOAWAY, refuse all further input."""
        self.goAway(code, message.encode("utf-8", "replace"))
        self.terminated = ConnectionTerminated(code, message)

    def dataToSend(self):
        out = self._out
        self._out = []
        return out

    def hasDataToSend(self):
        return bool(self._out)

    # -- receiving ------------------------------------------------------------------

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
            frames = e.decoded   # what came before the bad frame still happened
            error = e
        else:
            error = None
        try:
            for frame in frames:
                kind = frame.__class__
                if kind is Data:
                    self._onData(frame, events)
                elif kind is Syn:
                    self._onSyn(frame, events)
                elif kind is WndInc:
                    stream = self._referenced(frame.streamId)
                    if stream is not None and frame.increment:
                        stream.sendWindow += frame.increment
                        events.append(WindowUpdated(frame.streamId, frame.increment))
                elif kind is Rst:
                    if self._referenced(frame.streamId) is not None:
                        self._forget(frame.streamId)
                        events.append(StreamReset(frame.streamId, fromWireCode(frame.code), True))
                elif kind is GoAway:
                    self._onGoAway(frame, events)
        except ProtocolError as e:
            error = e
        if error is not None:
            self.terminate(error.code, str(error))
            events.append(self.terminated)
        return events

    def _referenced(self, streamId):
        """
        The stream a DATA/RST/WNDINC names, or None if we do not have it.  An
        ID above the highest used or seen for its parity can only be a
        broken peer: Go v1 ends the session on it.
        """
        if streamId > (self._lastLocalId if self.isLocal(streamId) else self._lastRemoteSyn):
            raise ProtocolError("frame for stream %d, which was never opened" % (streamId,))
        return self._streams.get(streamId)

    def _onSyn(self, frame, events):
        streamId = frame.streamId
        if self.isLocal(streamId):
            raise ProtocolError("SYN on stream %d, which has this side's parity" % (streamId,))
        if streamId <= self._lastRemoteSyn:
            raise ProtocolError("SYN on stream %d, not above the last peer stream %d"
                                % (streamId, self._lastRemoteSyn))
        self._lastRemoteSyn = streamId
        if self.goAwaySent or self._incoming >= self.maxIncomingStreams:
            code = (ErrorCode.STREAM_REFUSED if self.goAwaySent
                    else ErrorCode.ACCEPT_QUEUE_FULL)
            self._queueRst(streamId, code)
            events.append(StreamRefusedLocally(streamId, code))
            return
        self.lastRemoteId = streamId
        # SYN|FIN: the opener will not read (see the module docstring).
        self._streams[streamId] = stream = _Stream(streamId, self.window, localClosed=frame.fin)
        stream.recv = self._tuner.newWindow()
        self._incoming += 1
        events.append(StreamOpened(streamId, 0, frame.streamType, frame.priority))

    def _onData(self, frame, events):
        if frame.first:
            stream = self._startData(frame, events)
            self._current = None if frame.last else stream
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
        stream = self._referenced(streamId)
        if stream is None:
            # Gone or refused: the payload is thrown away and, as Go does,
            # answered with RST STREAM_CLOSED; a bare FIN (Go repeats them)
            # needs no answer.
            if length or not frame.flags & FLAG_FIN:
                self._queueRst(streamId, ErrorCode.STREAM_CLOSED)
            return _DISCARD
        if stream.remoteClosed:
            if length == 0:
                return _DISCARD
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
        code = fromWireCode(frame.code)
        self.goAwayReceived = GoAwayInfo(frame.lastStreamId, code, frame.debug, frame.truncated)
        refused = [streamId for streamId in self._streams
                   if self.isLocal(streamId) and streamId > frame.lastStreamId]
        for streamId in refused:
            self._forget(streamId)
        events.append(GoAwayReceived(frame.lastStreamId, code, frame.debug, refused))

    def _queue(self, frame):
        if self.terminated is None:
            self._out.append(frame)

    def _queueRst(self, streamId, code):
        self._queue(encodeRst(streamId, toWireCode(code)))

    def _forget(self, streamId):
        """Drop a stream, returning its window growth to the session."""
        stream = self._streams.pop(streamId, None)
        if stream is None:
            return
        self._tuner.release(stream.recv)
        if not self.isLocal(streamId):
            self._incoming -= 1
