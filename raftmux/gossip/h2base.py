# -*- test-case-name: raftmux.test.test_gossip -*-
"""
What the HTTP/2 server and client share: a Twisted ``Protocol`` driving a
sans-IO ``h2.connection.H2Connection``, with

* per-stream send queues that respect the peer's flow-control windows
  (``WindowUpdated`` resumes them) and tell the stream's writer to pause
  above a high-water mark and to resume below it;
* receive-side flow control left to the stream handlers: bytes are
  acknowledged (``acknowledge_received_data``) only once consumed;
* back-pressure on the TCP transport: while the transport's buffer is full
  we stop reading from the peer, so a peer that never reads cannot make us
  queue control-frame answers without bound;
* a token bucket against RST_STREAM floods (CVE-2023-44487 "rapid reset"):
  beyond it, GOAWAY ENHANCE_YOUR_CALM and close.

Stream handlers are plain objects with ``dataReceived(data, flowLength)``,
``ended()``, ``reset(errorCode)``, ``lost(reason)`` and optionally
``writable(bool)``; subclasses map stream ids to them in ``self.handlers``.
"""

from collections import deque

import h2.events as ev
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import H2Error, ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings
from h2.stream import StreamState
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux._tcp import setNoDelay
from raftmux.streamtransport import IStreamHost

DEFAULT_WINDOW = 1024 * 1024          # our receive window, per stream
DEFAULT_CONNECTION_WINDOW = 16 * 1024 * 1024
DEFAULT_MAX_CONCURRENT_STREAMS = 100
DEFAULT_MAX_H2_FRAME = 16384
HIGH_WATER = 256 * 1024               # queued bytes per stream before its writer pauses


class _Outbound:
    __slots__ = ("chunks", "size", "end", "paused")

    def __init__(self):
        self.chunks = deque()
        self.size = 0
        self.end = False
        self.paused = False


@implementer(IPushProducer, IStreamHost)
class H2Base(Protocol):
    log = Logger()

    #: RST_STREAMs a peer may send in a burst, then per second.
    resetBurst = 200
    resetRate = 100.0

    def __init__(self, clock, config, maxConcurrentStreams=DEFAULT_MAX_CONCURRENT_STREAMS,
                 window=DEFAULT_WINDOW, connectionWindow=DEFAULT_CONNECTION_WINDOW,
                 maxH2FrameSize=DEFAULT_MAX_H2_FRAME):
        self.clock = clock
        self.conn = H2Connection(config=config)
        # Settings(initial_values=...) so the first SETTINGS frame carries
        # them; assigning attributes would only queue them as pending.
        self.conn.local_settings = Settings(client=config.client_side, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: maxConcurrentStreams,
            SettingCodes.INITIAL_WINDOW_SIZE: window,
            SettingCodes.MAX_FRAME_SIZE: maxH2FrameSize,
        })
        self._connectionWindow = connectionWindow
        self.handlers = {}
        self._waitingStreams = {}           # stream transports waiting for window or the transport
        self._soon = []
        #: the RST_STREAM code for a stream transport closed while the peer may
        #: still send: CANCEL from a client, NO_ERROR from a server (as Go's)
        self.closeCode = ErrorCodes.CANCEL if config.client_side else ErrorCodes.NO_ERROR
        self._out = {}
        self._receiving = False
        self._transportPaused = False
        self._resetTokens = float(self.resetBurst)
        self._resetStamp = None
        self.closed = False
        #: bytes held in partial frames by all streams; see ``holdBytes``
        self.held = 0
        self.maxHeld = 64 * 1024 * 1024

    # -- Protocol ---------------------------------------------------------

    def connectionMade(self):
        setNoDelay(self.transport)
        self.transport.registerProducer(self, True)
        self.conn.initiate_connection()
        extra = self._connectionWindow - 65535
        if extra > 0:
            self.conn.increment_flow_control_window(extra)
        self.flush()

    def dataReceived(self, data):
        if self.closed:
            return
        self._receiving = True
        try:
            try:
                events = self.conn.receive_data(data)
            except ProtocolError as e:
                self.log.info("HTTP/2 protocol error from peer: {error}", error=e)
                self._abort()
                return
            for event in events:
                if self.closed:
                    break
                self._dispatch(event)
        finally:
            self._receiving = False
        self.flush()
        if self._soon:
            self._runSoon()

    def connectionLost(self, reason=None):
        self.closed = True
        handlers, self.handlers = self.handlers, {}
        self._out.clear()
        self._waitingStreams.clear()
        for handler in handlers.values():
            handler.lost(reason)
        self._runSoon()

    # -- IPushProducer (the TCP transport pushes back on us) ---------------
    #
    # While the transport's buffer is full we send no DATA, but keep reading:
    # if both ends stopped reading when their send buffers filled they would
    # deadlock (and TLS pauses its producer during the handshake).  What we
    # still write while paused (control frames, response headers) is capped.

    #: bytes we may write while the transport says it is full; beyond, the
    #: peer is not reading and is cut off
    maxPausedWrite = 1024 * 1024

    def pauseProducing(self):
        self._transportPaused = True
        self._pausedWritten = 0
        for stream in list(self._waitingStreams):
            stream.writabilityChanged()

    def resumeProducing(self):
        self._transportPaused = False
        if self.transport is not None and not self.closed:
            for streamID in list(self._out):
                self._flushStream(streamID)
            self._windowOpened()
            self.flush()

    def stopProducing(self):
        pass

    # -- sending ----------------------------------------------------------

    def flush(self):
        """Write whatever h2 has queued, unless we are inside ``dataReceived``."""
        if self._receiving or self.transport is None:
            return
        data = self.conn.data_to_send()
        if data:
            if self._transportPaused:
                self._pausedWritten += len(data)
                if self._pausedWritten > self.maxPausedWrite:
                    self.log.warn("HTTP/2 peer does not read; closing the connection")
                    self.closed = True
                    self.transport.abortConnection()
                    return
            self.transport.write(data)

    def sendData(self, streamID, data, end=False):
        """Queue ``data`` (may be empty) on a stream; flow control decides when it goes."""
        out = self._out.get(streamID)
        if out is None:
            out = self._out[streamID] = _Outbound()
        if data:
            out.chunks.append(data)
            out.size += len(data)
        if end:
            out.end = True
        self._flushStream(streamID)
        self.flush()

    def _flushStream(self, streamID):
        out = self._out.get(streamID)
        if out is None or self._transportPaused:
            return
        conn = self.conn
        last = False
        try:
            while out.chunks:
                window = conn.local_flow_control_window(streamID)
                if window <= 0:
                    break
                chunk = out.chunks[0]
                n = min(window, conn.max_outbound_frame_size, len(chunk))
                if n == len(chunk):
                    out.chunks.popleft()
                else:
                    out.chunks[0] = chunk[n:]
                    chunk = chunk[:n]
                out.size -= n
                last = out.end and not out.chunks
                conn.send_data(streamID, chunk, end_stream=last)
                if last:
                    out.end = False
            if out.end and not out.chunks:
                conn.end_stream(streamID)
                out.end = False
                last = True
        except (StreamClosedError, H2Error):
            self._out.pop(streamID, None)
            return
        handler = self.handlers.get(streamID)
        if out.paused and out.size < HIGH_WATER // 2:
            out.paused = False
            if handler is not None:
                handler.writable(True)
        elif not out.paused and out.size >= HIGH_WATER:
            out.paused = True
            if handler is not None:
                handler.writable(False)
        # writable(True) may have re-entered sendData: only drop *this* queue
        if not out.chunks and not out.end and self._out.get(streamID) is out:
            del self._out[streamID]

    def acknowledge(self, streamID, flowLength):
        """Hand ``flowLength`` received bytes back to the peer's send window."""
        if flowLength and not self.closed:
            self.conn.acknowledge_received_data(flowLength, streamID)
            self.flush()

    def streamOpen(self, streamID):
        """Is the peer's half of this stream still open (may it send more)?"""
        stream = self.conn.streams.get(streamID)
        return stream is not None and stream.state_machine.state in (
            StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)

    def holdBytes(self, delta):
        """
        Account for bytes a stream keeps (a partial frame, acknowledged so a
        frame larger than the window can complete).  False once the
        connection's total passes ``maxHeld``: the caller resets its stream.
        """
        self.held += delta
        return self.held <= self.maxHeld

    def streamFinished(self, streamID):
        """A stream's handler is done with it (the client starts queued requests)."""

    def forget(self, streamID):
        self.handlers.pop(streamID, None)

    def _abort(self):
        self.closed = True
        data = self.conn.data_to_send()
        if self.transport is not None:
            if data:
                self.transport.write(data)
            # a registered producer would hold a TLS transport's close open
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def goAway(self, code=ErrorCodes.NO_ERROR):
        try:
            self.conn.close_connection(code)
        except H2Error:
            pass
        self._abort()

    # -- events -----------------------------------------------------------

    def _dispatch(self, event):
        if isinstance(event, ev.DataReceived):
            handler = self.handlers.get(event.stream_id)
            if handler is None:
                self.conn.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id)
            else:
                handler.dataReceived(event.data, event.flow_controlled_length)
        elif isinstance(event, ev.StreamEnded):
            handler = self.handlers.get(event.stream_id)
            if handler is not None:
                handler.ended()
        elif isinstance(event, ev.WindowUpdated):
            if event.stream_id:
                self._flushStream(event.stream_id)
                handler = self.handlers.get(event.stream_id)
                if handler is not None and handler in self._waitingStreams:
                    handler.windowOpened()
            else:
                for streamID in list(self._out):
                    self._flushStream(streamID)
                self._windowOpened()
        elif isinstance(event, ev.StreamReset):
            self._out.pop(event.stream_id, None)
            handler = self.handlers.pop(event.stream_id, None)
            if event.remote_reset and not self._takeResetToken():
                self.log.warn("RST_STREAM flood from peer: GOAWAY ENHANCE_YOUR_CALM")
                self.goAway(ErrorCodes.ENHANCE_YOUR_CALM)
            if handler is not None:
                handler.reset(event.error_code)
        elif isinstance(event, ev.RemoteSettingsChanged):
            for streamID in list(self._out):
                self._flushStream(streamID)
            self._windowOpened()
        elif isinstance(event, ev.ConnectionTerminated):
            self.goneAway(event)
        else:
            self.otherEvent(event)

    def _takeResetToken(self):
        now = self.clock.seconds()
        if self._resetStamp is not None:
            self._resetTokens = min(float(self.resetBurst), self._resetTokens
                                    + (now - self._resetStamp) * self.resetRate)
        self._resetStamp = now
        if self._resetTokens < 1:
            return False
        self._resetTokens -= 1
        return True

    # -- IStreamHost (stream transports on this connection) -----------------

    def sendStreamData(self, stream, data):
        conn = self.conn
        streamID = stream.streamId
        sent = 0
        try:
            while sent < len(data):
                n = min(conn.local_flow_control_window(streamID), conn.max_outbound_frame_size,
                        len(data) - sent)
                if n <= 0:
                    break
                conn.send_data(streamID, data[sent:sent + n] if n < len(data) else data)
                sent += n
        except (StreamClosedError, H2Error):
            pass
        return sent

    def creditStream(self, stream, count):
        if count and not self.closed:
            try:
                self.conn.acknowledge_received_data(count, stream.streamId)
            except (StreamClosedError, H2Error):
                pass

    def endStream(self, stream):
        try:
            self.conn.end_stream(stream.streamId)
        except (StreamClosedError, H2Error):
            return True
        return not self.streamOpen(stream.streamId)

    def closeStream(self, stream):
        streamID = stream.streamId
        try:
            state = self.conn.streams[streamID].state_machine.state
        except (KeyError, AttributeError):
            return
        try:
            if state in (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE):
                self.conn.end_stream(streamID)
            if self.streamOpen(streamID):
                self.conn.reset_stream(streamID, self.closeCode)
        except (StreamClosedError, H2Error):
            pass

    def resetStream(self, stream, code=ErrorCodes.CANCEL):
        """Reset ``stream`` (a stream transport or a stream ID)."""
        streamID = getattr(stream, "streamId", stream)
        self._out.pop(streamID, None)
        self.handlers.pop(streamID, None)
        try:
            self.conn.reset_stream(streamID, code)
        except (StreamClosedError, H2Error):
            pass
        self.flush()

    def resetStreamWith(self, stream, code):
        self.resetStream(stream, code)

    def isWritable(self):
        return not self._transportPaused

    def setWaiting(self, stream, waiting):
        if waiting:
            self._waitingStreams[stream] = None
        else:
            self._waitingStreams.pop(stream, None)

    def streamGone(self, stream):
        self._waitingStreams.pop(stream, None)
        if self.handlers.get(stream.streamId) is stream:
            del self.handlers[stream.streamId]
        self.streamFinished(stream.streamId)

    def callSoon(self, f, *args):
        self._soon.append((f, args))
        if not self._receiving and len(self._soon) == 1:
            self.clock.callLater(0, self._runSoon)

    def getPeer(self):
        return self.transport.getPeer()

    def getHost(self):
        return self.transport.getHost()

    def _runSoon(self):
        pending, self._soon = self._soon, []
        for f, args in pending:
            f(*args)

    def _windowOpened(self):
        for stream in list(self._waitingStreams):
            if self._transportPaused:
                break
            stream.windowOpened()

    def goneAway(self, event):
        """The peer sent GOAWAY: by default, close."""
        self._abort()

    def otherEvent(self, event):
        pass


def lostReason(reason):
    return reason if reason is not None else Failure(ConnectionError("connection lost"))
