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
  once, and what follows it is read as frames (see ``v1frames.FrameDecoder``:
  Go v1's own GOAWAY declares debug text it never sends).

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

from raftmux.muxado.connectionbase import DISCARD, ConnectionBase
from raftmux.muxado.errors import ErrorCode, ProtocolError
from raftmux.muxado.events import StreamOpened, StreamRefusedLocally
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

DEFAULT_WINDOW = 0x10000  # 65,536: Go v1's defaultWindowSize; both peers must agree.


class MuxadoV1Connection(ConnectionBase):
    """
    One side of a muxado v1 session.

    ``client`` picks the stream-ID parity.  ``window`` must match the peer's
    (Go v1 never negotiates it: 65,536).  ``maxIncomingStreams`` bounds the
    streams the peer may hold open at once (further SYNs get RST
    REFUSED_STREAM; the event says ACCEPT_QUEUE_FULL), so a peer cannot grow
    memory without limit.  Go v1 itself has no such limit: its reader blocks
    once 100 streams wait to be accepted.
    """

    _dataFrame = Data

    def __init__(self, client, window=DEFAULT_WINDOW, maxIncomingStreams=1024,
                 maxGoAwayDebug=65536, windowUpdateThreshold=None, maxWindow=None,
                 windowBudget=0):
        ConnectionBase.__init__(self, client, window, maxIncomingStreams,
                                windowUpdateThreshold, maxWindow, windowBudget)
        self._decoder = FrameDecoder(maxGoAwayDebug)
        # The last ID used for each parity.  Go starts a client's own counter
        # at 1 and a server's at 0 (first streams 3 and 2), and a server's
        # "last remote ID" at 1, so a client SYN on 1 is refused as too low.
        self._lastLocalId = 1 if client else 0
        self._lastRemoteSyn = 0 if client else 1
        # The last peer stream taken in: what our GOAWAY reports.
        self.lastRemoteId = 0 if client else 1
        self.goAwayDebugSent = b""    # the debug text of our GOAWAY (kept local)

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
        self._newStream(streamId)
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
            stream.sendBlocked = True
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

    def _sendFin(self, stream):
        self._queue(dataHeader(stream.streamId, 0, FLAG_FIN))

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

    # -- receiving ------------------------------------------------------------------

    def _onFrame(self, frame, events):
        kind = frame.__class__
        if kind is Syn:
            self._onSyn(frame, events)
        elif kind is WndInc:
            stream = self._referenced(frame.streamId)
            if stream is not None and frame.increment:
                self._windowUpdated(stream, frame.increment, events)
        elif kind is Rst:
            if self._referenced(frame.streamId) is not None:
                self._resetByPeer(frame.streamId, fromWireCode(frame.code), events)
        elif kind is GoAway:
            code = fromWireCode(frame.code)
            self._goAwayReceived(
                GoAwayInfo(frame.lastStreamId, code, frame.debug, frame.truncated), events)

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
        self._newStream(streamId, localClosed=frame.fin)
        events.append(StreamOpened(streamId, 0, frame.streamType, frame.priority))

    def _startData(self, frame, events):
        """Checks made once per DATA frame, on its header; returns the stream or DISCARD."""
        streamId = frame.streamId
        length = frame.length
        stream = self._referenced(streamId)
        if stream is None:
            # Gone or refused: the payload is thrown away and, as Go does,
            # answered with RST STREAM_CLOSED; a bare FIN (Go repeats them)
            # needs no answer.
            if length or not frame.flags & FLAG_FIN:
                self._queueRst(streamId, ErrorCode.STREAM_CLOSED)
            return DISCARD
        if stream.remoteClosed:
            if length == 0:
                return DISCARD
            self._resetLocally(stream, ErrorCode.STREAM_CLOSED, events)
            return DISCARD
        if not stream.recv.receive(length):
            self._resetLocally(stream, ErrorCode.FLOW_CONTROL_ERROR, events)
            return DISCARD
        return stream

    def _encodeRst(self, streamId, code):
        return encodeRst(streamId, toWireCode(code))

    def _encodeWndInc(self, streamId, increment):
        return encodeWndInc(streamId, increment)

    def _silent(self):
        # Unlike v2, frames may follow a v1 GOAWAY; only a rule break silences us.
        return self.terminated is not None
