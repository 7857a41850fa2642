"""
What the sans-IO muxado connections of both generations share: stream
bookkeeping, flow-control credit, half-close and reset, the DATA pieces'
delivery, GOAWAY's refused streams, and ``receiveData``'s contract (bytes in,
events out; a rule break ends in one ``ConnectionTerminated`` event with the
GOAWAY already queued, and no exception reaches the caller).

``MuxadoConnection`` (v2) and ``MuxadoV1Connection`` (v1) add their framing:
how a stream opens, which frames carry what, and their wire codes.
"""

from __future__ import annotations

from typing import Any

from raftmux.muxado.errors import ErrorCode, ProtocolError
from raftmux.muxado.events import (
    ConnectionTerminated,
    DataReceived,
    GoAwayReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from raftmux.muxado.window import WindowTuner


class Stream:
    """One stream's state in a connection."""

    __slots__ = ("streamId", "sendWindow", "recv", "synPending", "localClosed",
                 "remoteClosed", "sendBlocked")

    def __init__(self, streamId, sendWindow, recv, synPending=False, localClosed=False):
        self.streamId = streamId
        self.sendWindow = sendWindow    # bytes we may still send
        self.recv = recv                # our ReceiveWindow for the peer's data
        self.synPending = synPending    # v2: opened here, SYN not yet sent
        self.localClosed = localClosed  # FIN sent (v1: or the peer's SYN|FIN said it won't read)
        self.remoteClosed = False       # FIN received
        self.sendBlocked = False        # our sends waited for the peer's window lately


class _Discard:
    """Marks a DATA frame whose remaining pieces are to be thrown away."""


DISCARD = _Discard()


class ConnectionBase:
    """
    One side of a muxado session, either generation (see the subclasses).

    ``client`` picks the stream-ID parity.  ``window`` must match the peer's
    (Go never negotiates it); receive windows may grow past it (up to
    ``maxWindow`` each, ``windowBudget`` in all) when the peer is
    window-bound, see ``raftmux.muxado.window``.  ``maxIncomingStreams``
    bounds the streams the peer may hold open at once, so a peer cannot grow
    memory without limit.
    """

    def __init__(self, client, window, maxIncomingStreams, windowUpdateThreshold,
                 maxWindow, windowBudget):
        self.client = client
        self.window = window
        self.maxIncomingStreams = maxIncomingStreams
        self.windowUpdateThreshold = (window // 4 if windowUpdateThreshold is None
                                      else windowUpdateThreshold)
        self._tuner = WindowTuner(window, maxWindow, windowBudget, windowUpdateThreshold)
        self._streams = {}
        self._incoming = 0
        self._out = []
        self._current = None          # stream (or DISCARD) of the DATA frame being read
        self.goAwaySent = False
        self.goAwayReceived = None    # .lastStreamId, .code, .debug, once received
        self.terminated = None        # ConnectionTerminated, once the peer broke the rules

    # -- to be provided by each generation ------------------------------------------

    _decoder: Any = None
    _dataFrame: Any = None    # the decoder's DATA piece class

    def _onFrame(self, frame, events):
        """Act on one decoded frame other than DATA pieces."""
        raise NotImplementedError

    def _startData(self, frame, events):
        """Checks made once per DATA frame, on its header; the stream or DISCARD."""
        raise NotImplementedError

    def _sendFin(self, stream):
        """Queue our FIN for ``stream`` (already marked localClosed)."""
        raise NotImplementedError

    def _encodeRst(self, streamId, code):
        raise NotImplementedError

    def _encodeWndInc(self, streamId, increment):
        raise NotImplementedError

    def _silent(self):
        """True once nothing more may be queued (v2: after our GOAWAY; v1: once terminated)."""
        raise NotImplementedError

    def goAway(self, code=ErrorCode.NO_ERROR, debug=b""):
        raise NotImplementedError

    # -- queries --------------------------------------------------------------------

    def isOpen(self, streamId: int) -> bool:
        return streamId in self._streams

    def sendWindow(self, streamId: int) -> int:
        stream = self._streams.get(streamId)
        return 0 if stream is None else stream.sendWindow

    def canSend(self, streamId: int) -> bool:
        """Is the stream's send half open (known, no FIN sent, not opened with SYN|FIN)?"""
        stream = self._streams.get(streamId)
        return stream is not None and not stream.localClosed

    def streamIds(self) -> list[int]:
        return list(self._streams)

    def isLocal(self, streamId: int) -> bool:
        return (streamId & 1) == (1 if self.client else 0)

    # -- sending ----------------------------------------------------------------------

    def endStream(self, streamId: int) -> bool:
        """
        Half-close: send FIN.  Returns True if the stream is now closed both
        ways (and forgotten).
        """
        stream = self._streams.get(streamId)
        if stream is None or stream.localClosed:
            return stream is None
        stream.localClosed = True
        self._sendFin(stream)
        if stream.remoteClosed:
            self._forget(streamId)
            return True
        return False

    def closeStream(self, streamId: int) -> None:
        """
        Go's ``Close()``: FIN if not yet sent, then forget the stream at once;
        later DATA from the peer is answered with RST STREAM_CLOSED.
        """
        stream = self._streams.get(streamId)
        if stream is None:
            return
        if not stream.localClosed:
            stream.localClosed = True
            self._sendFin(stream)
        self._forget(streamId)

    def resetStream(self, streamId: int, code: int = ErrorCode.STREAM_CANCELLED) -> None:
        """Send RST(code) and forget the stream; a never-announced one is just dropped."""
        stream = self._streams.get(streamId)
        if stream is None:
            return
        if not stream.synPending:
            self._queueRst(streamId, code)
        self._forget(streamId)

    def acknowledgeReceivedData(self, streamId: int, n: int) -> None:
        """
        The application has taken ``n`` bytes of ``streamId``: give the credit
        back once a batch (by default a quarter of the window) is owed, grown
        when the peer is window-bound.  Go credits every read; batching is
        safe because Go's senders add every increment, without a cap.
        """
        stream = self._streams.get(streamId)
        if stream is None or stream.remoteClosed:
            return
        # A stream whose own sends wait for the peer's credit does not grow
        # its receive window: more of the peer's data queued ahead of that
        # credit would only delay it (an echo slows down, measured).
        increment = stream.recv.consume(n, self._tuner, not stream.sendBlocked)
        if increment:
            stream.sendBlocked = False
            self._queue(self._encodeWndInc(streamId, increment))

    def terminate(self, code: int, message: str) -> None:
        """End the session because of ``code``: queue GOAWAY, refuse all further input."""
        self.goAway(code, message.encode("utf-8", "replace"))
        self.terminated = ConnectionTerminated(code, message)

    def dataToSend(self) -> list[bytes]:
        out = self._out
        self._out = []
        return out

    def hasDataToSend(self) -> bool:
        return bool(self._out)

    # -- receiving ----------------------------------------------------------------------

    def receiveData(self, data: bytes) -> list[Any]:
        """
        Feed bytes from the peer; returns the events they complete.  A protocol
        violation ends with a ``ConnectionTerminated`` event (GOAWAY queued);
        nothing after it is processed.
        """
        if self.terminated is not None:
            return []
        events: list[Any] = []
        error: ProtocolError | None
        try:
            frames = self._decoder.receiveData(data)
        except ProtocolError as e:
            # What came before the bad frame, where the decoder says so, still happened.
            frames = getattr(e, "decoded", ())
            error = e
        else:
            error = None
        try:
            dataFrame = self._dataFrame
            for frame in frames:
                if frame.__class__ is dataFrame:
                    self._onData(frame, events)
                else:
                    self._onFrame(frame, events)
        except ProtocolError as e:
            error = e
        if error is not None:
            self.terminate(error.code, str(error))
            events.append(self.terminated)
        return events

    def _onData(self, frame, events):
        if frame.first:
            stream = self._startData(frame, events)
            self._current = None if frame.last else stream
        else:
            stream = self._current
            if frame.last:
                self._current = None
        if stream is None or stream is DISCARD:
            return
        data = frame.data
        if data:
            events.append(DataReceived(frame.streamId, data))
        if frame.last and frame.flags & 1:  # FIN is 0x1 in both generations
            stream.remoteClosed = True
            events.append(StreamEnded(frame.streamId))
            if stream.localClosed:
                self._forget(frame.streamId)

    def _windowUpdated(self, stream, increment, events):
        stream.sendWindow += increment
        events.append(WindowUpdated(stream.streamId, increment))

    def _resetByPeer(self, streamId, code, events):
        if self._forget(streamId):
            events.append(StreamReset(streamId, code, True))

    def _resetLocally(self, stream, code, events):
        self._queueRst(stream.streamId, code)
        self._forget(stream.streamId)
        events.append(StreamReset(stream.streamId, code, False))

    def _goAwayReceived(self, info, events):
        """The peer's GOAWAY (``info``: lastStreamId, code, debug): refuse what it never saw."""
        self.goAwayReceived = info
        refused = [streamId for streamId in self._streams
                   if self.isLocal(streamId) and streamId > info.lastStreamId]
        for streamId in refused:
            self._forget(streamId)
        events.append(GoAwayReceived(info.lastStreamId, info.code, info.debug, refused))

    def _newStream(self, streamId, **state):
        """A new stream's state, its receive window from the session's tuner."""
        stream = Stream(streamId, self.window, self._tuner.newWindow(), **state)
        self._streams[streamId] = stream
        if not self.isLocal(streamId):
            self._incoming += 1
        return stream

    def _queue(self, frame):
        if not self._silent():
            self._out.append(frame)

    def _queueRst(self, streamId, code):
        self._queue(self._encodeRst(streamId, code))

    def _forget(self, streamId):
        """Drop a stream, returning its window growth to the session; True if it was here."""
        stream = self._streams.pop(streamId, None)
        if stream is None:
            return False
        self._tuner.release(stream.recv)
        if not self.isLocal(streamId):
            self._incoming -= 1
        return True
