"""
The muxado v2 session as a sans-IO state machine.

``MuxadoConnection`` knows stream IDs, stream states and flow-control windows,
and nothing about sockets, reactors or clocks: ``receiveData(bytes)`` returns
events, the send methods queue frames, ``dataToSend()`` hands the bytes over.
It follows Go's v2 behaviour (spec sections 5-7) wherever a Go peer would
notice, and refuses Go's known bugs (SYN+FIN on an opening frame, replies
after GOAWAY) where copying them would break interop.  What both generations
share is in ``connectionbase``; the events are in ``events``.
"""

from __future__ import annotations

from raftmux.muxado.connectionbase import DISCARD, ConnectionBase
from raftmux.muxado.errors import ErrorCode, ProtocolError
from raftmux.muxado.events import (  # noqa: F401  (re-exported: the session's names)
    ConnectionTerminated,
    DataReceived,
    GoAwayReceived,
    StreamEnded,
    StreamOpened,
    StreamRefusedLocally,
    StreamReset,
    WindowUpdated,
)
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

DEFAULT_WINDOW = 0x40000  # 262,144: Go's MaxWindowSize; both peers must agree.


class MuxadoConnection(ConnectionBase):
    """
    One side of a muxado v2 session.

    ``client`` picks the stream-ID parity: a client opens odd IDs starting at
    3 (as Go does), a server even IDs starting at 2.  ``window`` must match
    the peer's (Go never negotiates it).  ``maxIncomingStreams`` bounds the
    streams the peer may hold open at once (further SYNs get RST
    ACCEPT_QUEUE_FULL), so a peer cannot grow memory without limit.
    """

    _dataFrame = Data

    def __init__(self, client: bool, window: int = DEFAULT_WINDOW, maxIncomingStreams: int = 1024,
                 maxGoAwayDebug: int = 65536, windowUpdateThreshold: int | None = None,
                 maxWindow: int | None = None, windowBudget: int = 0) -> None:
        ConnectionBase.__init__(self, client, window, maxIncomingStreams,
                                windowUpdateThreshold, maxWindow, windowBudget)
        self._decoder = FrameDecoder(maxGoAwayDebug)
        self._nextId = 1 if client else 0
        # Go reports 1 (server) or 0 (client) as last-stream-id before any
        # peer stream; a Go server's "1" covers no real client stream.
        self.lastRemoteId = 0 if client else 1

    # -- opening ----------------------------------------------------------------

    def openStream(self) -> int:
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
        self._newStream(streamId, synPending=True)
        return streamId

    # -- sending ------------------------------------------------------------------

    def sendData(self, streamId: int, data: bytes) -> int:
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
            stream.sendBlocked = True
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

    def _sendFin(self, stream):
        if self.goAwaySent:
            return
        if stream.synPending:
            stream.synPending = False
            self._out.append(dataHeader(stream.streamId, 0, FLAG_SYN))
        self._out.append(dataHeader(stream.streamId, 0, FLAG_FIN))

    def goAway(self, code: int = ErrorCode.NO_ERROR, debug: bytes = b"") -> None:
        """
        Queue GOAWAY as the very last frame of the session: a Go peer reads 8
        bytes past a GOAWAY's end (spec 4.4), so the shell must close the
        transport right after sending it.  Later SYNs are refused with RST 5.
        """
        if self.goAwaySent:
            return
        self._out.append(encodeGoAway(self.lastRemoteId, code, debug))
        self.goAwaySent = True

    # -- receiving ---------------------------------------------------------------

    def _onFrame(self, frame, events):
        kind = frame.__class__
        if kind is WndInc:
            stream = self._streams.get(frame.streamId)
            if stream is not None:
                self._windowUpdated(stream, frame.increment, events)
        elif kind is Rst:
            self._resetByPeer(frame.streamId, frame.code, events)
        elif kind is GoAway:
            self._goAwayReceived(frame, events)
        # Unknown frame types: skipped (spec 4.5).

    def _startData(self, frame, events):
        """Checks made once per DATA frame, on its header; returns the stream or DISCARD."""
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
                return DISCARD
            self.lastRemoteId = streamId
            stream = self._newStream(streamId)
            events.append(StreamOpened(streamId, length))
        else:
            stream = self._streams.get(streamId)
            if stream is None:
                # Unknown or forgotten stream: an empty FIN is ignored, anything
                # else is answered with RST STREAM_CLOSED (spec 5.5).
                if length or not frame.flags & FLAG_FIN:
                    self._queueRst(streamId, ErrorCode.STREAM_CLOSED)
                return DISCARD
            if stream.synPending:
                # The peer sends data on a stream we have not announced yet.
                self._resetLocally(stream, ErrorCode.STREAM_CLOSED, events)
                return DISCARD
            if stream.remoteClosed:
                if length == 0:
                    return DISCARD  # Go repeats empty FINs; tolerate them.
                self._resetLocally(stream, ErrorCode.STREAM_CLOSED, events)
                return DISCARD
        if not stream.recv.receive(length):
            self._resetLocally(stream, ErrorCode.FLOW_CONTROL_ERROR, events)
            return DISCARD
        return stream

    def _encodeRst(self, streamId, code):
        return encodeRst(streamId, code)

    def _encodeWndInc(self, streamId, increment):
        return encodeWndInc(streamId, increment)

    def _silent(self):
        # Nothing may follow our GOAWAY: a Go v2 reader misreads it (spec 4.4).
        return self.goAwaySent
