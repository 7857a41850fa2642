# -*- test-case-name: raftmux.test.test_h2_connection -*-
"""
``H2Protocol``: the Twisted side of one HTTP/2 connection, either role,
driving a sans-IO ``h2.connection.H2Connection``.  ``h2`` does the protocol
(frames, HPACK, stream states, windows); this class does Twisted:

* it is the ``IStreamHost`` of its ``H2Stream``s: their bodies go through
  the one stream-transport base (send queue, producers, credit only what
  was delivered), and it frames what they send within the windows;
* it is a push producer toward its transport: while the transport's buffer
  is full no DATA is framed and the streams' producers pause, but reading
  goes on (both ends pausing reads would deadlock); control frames written
  meanwhile are capped (``maxPausedWrite``), so a peer that never reads is
  cut off rather than buffered for;
* limits: a token bucket against RST_STREAM floods (CVE-2023-44487), the
  header list size (h2's decoder), body sizes (per stream), concurrent
  streams (refused with REFUSED_STREAM a little past what we announce, a
  connection error well past it), bytes held by stream protocols;
* GOAWAY both ways, graceful: streams at or below the last stream ID
  finish, later ones are refused (``h2`` itself would refuse every frame
  after a GOAWAY; see ``_state``);
* PING keepalive and an idle timeout.

Subclasses: ``H2ServerProtocol`` (routes requests) and ``H2ClientProtocol``
(opens streams).
"""

import os
from collections import deque

import h2.events as ev
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import H2Error, ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings
from h2.stream import StreamState
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux._tcp import setNoDelay
from raftmux.h2._hpack import CachingDecoder, CachingEncoder
from raftmux.h2._state import GracefulStateMachine
from raftmux.h2._validate import checkResponse, checkTrailers
from raftmux.h2.config import H2Config
from raftmux.h2.errors import ConnectionGoneAway, StreamReset
from raftmux.streamtransport import IStreamHost

__all__ = ["H2Protocol", "h2Configuration"]

_PEER_OPEN = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL})
_LOCAL_OPEN = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE})

#: streams a peer may open past our announced limit (refused one by one,
#: as RFC 9113 5.1.2 allows) before h2 ends the connection
STREAM_LIMIT_SLACK = 100


def h2Configuration(clientSide):
    """
    ``h2``'s configuration for the shell: bytes headers, and no validation
    or normalisation of the headers we send (we build them; checking every
    field of every request was a large part of h2's cost).  What we receive
    is checked by the shell (``_validate``: the same rules, remembering the
    fields it has seen, and a malformed block is a stream error, not the end
    of the connection).
    """
    return H2Configuration(client_side=clientSide, header_encoding=None,
                           validate_outbound_headers=False,
                           normalize_outbound_headers=False,
                           split_outbound_cookies=False,
                           validate_inbound_headers=False)


class _LocalSettings(Settings):
    """
    Our settings as ``h2`` sends them, except that the concurrent-stream
    limit it enforces on the peer is a little above the one we announce:
    ``h2`` makes the first stream over the limit a connection error, while
    a peer may open a few before our SETTINGS reaches it; the shell refuses
    those one by one instead.
    """

    slack = STREAM_LIMIT_SLACK

    @property
    def max_concurrent_streams(self):
        return Settings.max_concurrent_streams.fget(self) + self.slack

    @max_concurrent_streams.setter
    def max_concurrent_streams(self, value):
        Settings.max_concurrent_streams.fset(self, value)


#: below this many streams in h2's table, a stream-limit check needs no count
CHEAP_STREAM_COUNT = 256


class _Connection(H2Connection):
    """
    ``h2``'s connection, with the stream-limit checks made cheap: ``h2``
    counts open streams (a walk of all its streams) before each new one, so
    opening a batch of n streams cost O(n^2).  The number of streams in its
    table is an upper bound of the open ones; while that bound is under the
    limit (and the table small), the check passes without the walk.  Past
    either, h2's own count runs (and forgets closed streams, as it does).
    ``open_inbound_streams``/``open_outbound_streams`` are thus exact only
    when a limit is near.
    """

    @property
    def open_outbound_streams(self):
        n = len(self.streams)
        if n < CHEAP_STREAM_COUNT and n < self.remote_settings.max_concurrent_streams:
            return n
        return H2Connection.open_outbound_streams.fget(self)

    @property
    def open_inbound_streams(self):
        n = len(self.streams)
        if n < CHEAP_STREAM_COUNT and n < self.local_settings.max_concurrent_streams:
            return n
        return H2Connection.open_inbound_streams.fget(self)


def _lostReason(reason):
    return reason if reason is not None else Failure(ConnectionDone())


@implementer(IPushProducer, IStreamHost)
class H2Protocol(Protocol):
    """
    One HTTP/2 connection.  ``clock`` is an ``IReactorTime``; ``config`` an
    ``H2Config``.  ``streams`` maps stream IDs to the live ``H2Stream``s.
    """

    log = Logger()
    clientSide = False

    def __init__(self, clock, config=None):
        self.clock = clock
        self.config = config = config if config is not None else H2Config()
        conn = _Connection(config=h2Configuration(self.clientSide))
        self.validate = config.validateInboundHeaders
        self.machine = conn.state_machine = GracefulStateMachine()
        conn.encoder = CachingEncoder()
        conn.decoder = CachingDecoder()
        # Settings(initial_values=...) so that the first SETTINGS frame
        # carries them (assigning attributes would queue them as changes).
        conn.local_settings = _LocalSettings(client=self.clientSide, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: config.maxConcurrentStreams,
            SettingCodes.INITIAL_WINDOW_SIZE: config.initialWindowSize,
            SettingCodes.MAX_FRAME_SIZE: config.maxFrameSize,
            SettingCodes.MAX_HEADER_LIST_SIZE: config.maxHeaderListSize,
            SettingCodes.ENABLE_PUSH: 0,
        })
        conn.max_inbound_frame_size = config.maxFrameSize
        conn.decoder.max_header_list_size = config.maxHeaderListSize
        self.conn = conn
        self.streams = {}
        #: the peer's SETTINGS has arrived (a client waits for it to open
        #: more than ``assumedPeerMaxStreams`` streams)
        self.peerSettingsReceived = False
        #: last stream ID of the GOAWAY we sent, or None
        self.goAwaySent = None
        #: the peer's GOAWAY (``h2.events.ConnectionTerminated``), or None
        self.goAwayReceived = None
        self.closed = False
        #: keepalive PINGs sent so far
        self.pingsSent = 0
        #: bytes stream protocols keep across the connection; see ``holdBytes``
        self.held = 0
        self._waiting = {}            # streams wanting windowOpened, in service order
        self._soon = []
        self._receiving = False
        self._holding = False
        self._paused = False
        self._pausedWritten = 0
        self._resetTokens = float(config.resetBurst)
        self._resetStamp = None
        self._lastReceived = 0.0
        self._pingTimer = None
        self._pingDeadline = None
        self._pingData = None
        self._idleTimer = None
        self._idleSince = None
        self._shutdownTimer = None
        self._closedWaiters = []
        self._closing = False
        self._peerAddress = None
        self._backlog = None
        self._continueCall = None
        self._dispatch = {
            ev.DataReceived: self._dataReceived,
            ev.StreamEnded: self._streamEnded,
            ev.WindowUpdated: self._windowUpdated,
            ev.RequestReceived: self.requestReceived,
            ev.ResponseReceived: self._responseReceived,
            ev.TrailersReceived: self._trailersReceived,
            ev.InformationalResponseReceived: self._informationalReceived,
            ev.StreamReset: self._streamReset,
            ev.RemoteSettingsChanged: self._settingsChanged,
            ev.ConnectionTerminated: self._goAwayReceived,
            ev.PingAckReceived: self._pingAcked,
        }

    def __repr__(self):
        return "<%s %s streams=%d%s>" % (
            self.__class__.__name__, "client" if self.clientSide else "server",
            len(self.streams), " closed" if self.closed else "")

    # -- Protocol --------------------------------------------------------------

    def connectionMade(self):
        setNoDelay(self.transport)
        self.transport.registerProducer(self, True)
        self._lastReceived = self.clock.seconds()
        self.startProtocol()

    def startProtocol(self):
        """Send our preface (SETTINGS, the connection window) and start the timers."""
        conn = self.conn
        conn.initiate_connection()
        extra = self.config.connectionWindowSize - 65535
        if extra > 0:
            conn.increment_flow_control_window(extra)
        self.flush()
        self._armKeepalive()
        self._updateIdle()

    def dataReceived(self, data):
        if self.closed:
            return
        if self._pingTimer is not None:
            self._lastReceived = self.clock.seconds()
        self._receiving = self._holding = True
        try:
            try:
                events = self.conn.receive_data(data)
            except ProtocolError as e:
                self._protocolError(e)
                return
            backlog = self._backlog
            if backlog is not None:
                backlog.extend(events)
                return
            slice = self.config.eventsPerTurn
            if slice and len(events) > slice:
                self._backlog = deque(events[slice:])
                events = events[:slice]
                self.transport.pauseProducing()
                self._continueCall = self.clock.callLater(0, self._continue)
            self._dispatchEvents(events)
        finally:
            self._receiving = False
        self._holding = False
        self.flush()
        if self._soon:
            self._runSoon()

    @property
    def backlog(self):
        """Received events waiting for a reactor turn (``eventsPerTurn``)."""
        return len(self._backlog) if self._backlog else 0

    def _continue(self):
        """Dispatch the next slice of a backlog; read again once it is done."""
        self._continueCall = None
        backlog = self._backlog
        if backlog is None or self.closed:
            self._backlog = None
            return
        slice = self.config.eventsPerTurn
        events = [backlog.popleft() for _ in range(min(slice, len(backlog)))]
        if backlog:
            self._continueCall = self.clock.callLater(0, self._continue)
        else:
            self._backlog = None
            self.transport.resumeProducing()
        self._receiving = self._holding = True
        try:
            self._dispatchEvents(events)
        finally:
            self._receiving = self._holding = False
        self.flush()
        if self._soon:
            self._runSoon()

    def _dispatchEvents(self, events):
        dispatch = self._dispatch
        for event in events:
            if self.closed:
                break
            handler = dispatch.get(event.__class__)
            if handler is None:
                continue
            try:
                handler(event)
            except Exception:
                self._handlerFailed(event)

    def connectionLost(self, reason=None):
        self.closed = True
        reason = _lostReason(reason)
        for timer in (self._pingTimer, self._pingDeadline, self._idleTimer,
                      self._shutdownTimer, self._continueCall):
            if timer is not None and timer.active():
                timer.cancel()
        self._pingTimer = self._pingDeadline = self._idleTimer = self._shutdownTimer = None
        self._continueCall = self._backlog = None
        streams = list(self.streams.values())
        self.streams.clear()
        self._waiting.clear()
        for stream in streams:
            stream.streamLost(reason)
        self._runSoon()
        self.connectionClosed(reason)
        waiters, self._closedWaiters = self._closedWaiters, []
        for d in waiters:
            d.callback(None)

    def connectionClosed(self, reason):
        """The connection is gone and its streams told (subclasses: the pool)."""

    def whenClosed(self):
        """A Deferred that fires (with None) once the connection is closed."""
        if self.closed and self.transport is None:
            return succeed(None)
        d = Deferred()
        self._closedWaiters.append(d)
        return d

    # -- IPushProducer (the transport pushes back on us) -----------------------

    def pauseProducing(self):
        self._paused = True
        self._pausedWritten = 0
        for stream in list(self._waiting):
            stream.writabilityChanged()

    def resumeProducing(self):
        self._paused = False
        if self.transport is None or self.closed:
            return
        self._windowOpened()
        self.flush()

    def stopProducing(self):
        pass

    # -- writing -----------------------------------------------------------------

    def flush(self):
        """Write what ``h2`` has framed (at the end of ``dataReceived`` when inside it)."""
        if self._holding or self.transport is None:
            return
        data = self.conn.data_to_send()
        if not data:
            return
        if self._paused:
            self._pausedWritten += len(data)
            if self._pausedWritten > self.config.maxPausedWrite and not self.closed:
                self.log.warn("HTTP/2 peer {peer} does not read; closing the connection",
                              peer=self._peer())
                self.closed = True
                self.transport.abortConnection()
                return
        self.transport.write(data)

    def _closeTransport(self):
        """Write what is framed, then close (a GOAWAY must get out)."""
        self.closed = True
        transport = self.transport
        if transport is None:
            return
        data = self.conn.data_to_send()
        if data:
            transport.write(data)
        if not self._closing:
            self._closing = True
            # A registered producer would hold a TLS transport's close open.
            transport.unregisterProducer()
            transport.loseConnection()

    def _protocolError(self, error):
        self.log.info("HTTP/2 protocol error from {peer}: {error}", peer=self._peer(),
                      error=error)
        self.machine.close()
        self._closeTransport()

    def _handlerFailed(self, event):
        streamId = getattr(event, "stream_id", None)
        self.log.failure("HTTP/2 stream {stream} handler failed", stream=streamId)
        stream = self.streams.get(streamId) if streamId else None
        if stream is not None and not stream.disconnected:
            stream.resetCode = ErrorCodes.INTERNAL_ERROR
            self.resetStream(stream)
            stream.streamLost(Failure(StreamReset(ErrorCodes.INTERNAL_ERROR, remote=False)))

    # -- GOAWAY, keepalive, idle --------------------------------------------------

    def goAway(self, code=ErrorCodes.NO_ERROR, debug=b""):
        """
        Send GOAWAY.  With NO_ERROR it is graceful: the streams the peer
        opened so far (and ours) finish, new ones are refused, and the
        connection closes when none is left (or after ``shutdownTimeout``).
        Any other code closes at once.  Returns ``whenClosed()``.
        """
        d = self.whenClosed()
        if self.closed:
            return d
        graceful = code == ErrorCodes.NO_ERROR
        if self.goAwaySent is None or not graceful:
            lastStreamId = self.conn.highest_inbound_stream_id
            try:
                self.conn.close_connection(code, debug or None, last_stream_id=lastStreamId)
            except H2Error:
                pass
            self.goAwaySent = lastStreamId
        if not graceful or not self.streams:
            self._closeTransport()
            return d
        self.flush()
        timeout = self.config.shutdownTimeout
        if timeout is not None and self._shutdownTimer is None:
            self._shutdownTimer = self.clock.callLater(timeout, self._shutdownTimedOut)
        self.goingAway()
        return d

    def goingAway(self):
        """A GOAWAY was sent or received (subclasses: stop opening streams)."""

    def _shutdownTimedOut(self):
        self._shutdownTimer = None
        if not self.closed:
            self.log.info("HTTP/2: {n} streams still open {timeout}s after GOAWAY; closing",
                          n=len(self.streams), timeout=self.config.shutdownTimeout)
            self._closeTransport()

    def _goAwayReceived(self, event):
        self.goAwayReceived = event
        last = event.last_stream_id
        if event.error_code != ErrorCodes.NO_ERROR:
            self.log.info("HTTP/2 peer {peer} sent GOAWAY {code} {debug!r}", peer=self._peer(),
                          code=event.error_code, debug=event.additional_data)
        outbound = 1 if self.clientSide else 0
        for streamId, stream in list(self.streams.items()):
            if streamId % 2 == outbound and streamId > last:
                stream.streamLost(Failure(ConnectionGoneAway(
                    "the peer's GOAWAY (last stream %d) came before it processed stream %d"
                    % (last, streamId), retryable=True)))
        self.goingAway()
        if not self.streams:
            self._closeTransport()

    def _armKeepalive(self, delay=None):
        interval = self.config.pingInterval
        if interval and not self.closed:
            self._pingTimer = self.clock.callLater(
                interval if delay is None else delay, self._keepalive)

    def _keepalive(self):
        self._pingTimer = None
        if self.closed:
            return
        interval = self.config.pingInterval
        quiet = self.clock.seconds() - self._lastReceived
        if quiet < interval:
            self._armKeepalive(interval - quiet)
            return
        self._pingData = os.urandom(8)
        try:
            self.conn.ping(self._pingData)
        except H2Error:
            return
        self.pingsSent += 1
        self.flush()
        self._pingDeadline = self.clock.callLater(self.config.pingTimeout, self._pingTimedOut)

    def _pingAcked(self, event):
        if self._pingDeadline is None or event.ping_data != self._pingData:
            return
        self._pingDeadline.cancel()
        self._pingDeadline = None
        self._lastReceived = self.clock.seconds()
        self._armKeepalive()

    def _pingTimedOut(self):
        self._pingDeadline = None
        if self.closed:
            return
        self.log.warn("HTTP/2 peer {peer} did not answer a PING within {timeout}s; "
                      "closing the connection", peer=self._peer(),
                      timeout=self.config.pingTimeout)
        self.closed = True
        self.transport.abortConnection()

    def _updateIdle(self):
        """
        Note when the last stream went (or that one is open).  One timer,
        re-armed only when it fires: streams coming and going on a busy
        connection cost no timer calls.
        """
        timeout = self.config.idleTimeout
        if timeout is None or self.closed:
            return
        if self.streams:
            self._idleSince = None
            return
        if self._idleSince is None:
            self._idleSince = self.clock.seconds()
        if self._idleTimer is None:
            self._idleTimer = self.clock.callLater(timeout, self._idled)

    def _idled(self):
        self._idleTimer = None
        if self.closed or self._idleSince is None:
            return  # busy: the next idle moment arms it again
        left = self._idleSince + self.config.idleTimeout - self.clock.seconds()
        if left > 0:
            self._idleTimer = self.clock.callLater(left, self._idled)
            return
        self.goAway()

    # -- received events ---------------------------------------------------------

    def requestReceived(self, event):
        """A peer opened a stream with a request (servers override)."""
        self.resetStreamId(event.stream_id, ErrorCodes.REFUSED_STREAM)

    def _dataReceived(self, event):
        stream = self.streams.get(event.stream_id)
        if stream is None:
            if event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                    event.stream_id)
            return
        stream.dataReceived(event.data, event.flow_controlled_length)

    def _streamEnded(self, event):
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.readEnded()

    def _responseReceived(self, event):
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            if self.validate and self._malformed(stream, checkResponse(event.headers)):
                return
            stream.headersReceived(event.headers)

    def _trailersReceived(self, event):
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            if self.validate and self._malformed(stream, checkTrailers(event.headers)):
                return
            stream.trailersReceived(event.headers)

    def _informationalReceived(self, event):
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            if self.validate and self._malformed(stream, checkResponse(event.headers)):
                return
            stream.informationalReceived(event.headers)

    def _malformed(self, stream, error):
        """A malformed header block (RFC 9113 8.1.1): reset its stream with PROTOCOL_ERROR."""
        if error is None:
            return False
        self.log.info("HTTP/2 {peer}: malformed headers on stream {stream}: {error}",
                      peer=self._peer(), stream=stream.streamId, error=error)
        stream.resetCode = ErrorCodes.PROTOCOL_ERROR
        self.resetStream(stream)
        stream.streamLost(Failure(StreamReset(ErrorCodes.PROTOCOL_ERROR, remote=False)))
        return True

    def _streamReset(self, event):
        stream = self.streams.get(event.stream_id)
        if event.remote_reset and not self._takeResetToken():
            self.log.warn("RST_STREAM flood from {peer}: GOAWAY ENHANCE_YOUR_CALM",
                          peer=self._peer())
            self.goAway(ErrorCodes.ENHANCE_YOUR_CALM)
        if stream is not None:
            stream.streamLost(Failure(StreamReset(event.error_code, remote=event.remote_reset)))

    def _windowUpdated(self, event):
        if event.stream_id:
            stream = self.streams.get(event.stream_id)
            if stream is not None and stream in self._waiting and not self._paused:
                stream.windowOpened()
        else:
            self._windowOpened()

    def _settingsChanged(self, event):
        self.peerSettingsReceived = True
        changed = event.changed_settings
        if SettingCodes.INITIAL_WINDOW_SIZE in changed or SettingCodes.MAX_FRAME_SIZE in changed:
            self._windowOpened()
        self.peerSettingsChanged(changed)

    def peerSettingsChanged(self, changed):
        """The peer's SETTINGS arrived (subclasses: a client's stream limit)."""

    def _takeResetToken(self):
        config = self.config
        now = self.clock.seconds()
        if self._resetStamp is not None:
            self._resetTokens = min(float(config.resetBurst), self._resetTokens
                                    + (now - self._resetStamp) * config.resetRate)
        self._resetStamp = now
        if self._resetTokens < 1:
            return False
        self._resetTokens -= 1
        return True

    def _windowOpened(self):
        """Windows opened or the transport resumed: serve waiting streams, round robin."""
        waiting = self._waiting
        for stream in list(waiting):
            if self._paused or self.closed:
                break
            stream.windowOpened()
            if stream in waiting:
                del waiting[stream]
                waiting[stream] = None

    # -- helpers for streams and subclasses -------------------------------------

    def peerMaySend(self, stream):
        """Is the peer's half of ``stream`` still open (may it send more)?"""
        h2stream = self.conn.streams.get(stream.streamId)
        return h2stream is not None and h2stream.state_machine.state in _PEER_OPEN

    def holdBytes(self, delta):
        """
        Account for bytes a stream protocol keeps (a partial message it
        credited so a message larger than the window can complete).  False
        once the connection's total passes ``config.maxHeldBytes``:
        the caller resets its stream.
        """
        self.held += delta
        return self.held <= self.config.maxHeldBytes

    def sendStreamHeaders(self, stream, headers, endStream):
        """Frame a header block on ``stream`` (h2's checks, not the caller's)."""
        try:
            self.conn.send_headers(stream.streamId, headers, end_stream=endStream)
        except (StreamClosedError, H2Error) as e:
            self.log.debug("cannot send headers on {stream!r}: {e}", stream=stream, e=e)

    # -- IStreamHost ---------------------------------------------------------------

    def sendStreamData(self, stream, data):
        conn = self.conn
        streamId = stream.streamId
        total = len(data)
        sent = 0
        try:
            while sent < total:
                n = min(conn.local_flow_control_window(streamId), conn.max_outbound_frame_size,
                        total - sent)
                if n <= 0:
                    break
                conn.send_data(streamId, data if n == total else data[sent:sent + n])
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

    def finalRoom(self, stream):
        """The most ``sendFinalData`` can take on ``stream`` now (window and frame size)."""
        conn = self.conn
        try:
            return min(conn.local_flow_control_window(stream.streamId),
                       conn.max_outbound_frame_size)
        except (StreamClosedError, H2Error):
            return 0

    def sendFinalData(self, stream, data):
        """Frame ``data`` (at most ``finalRoom``) with END_STREAM, and flush."""
        try:
            self.conn.send_data(stream.streamId, data, end_stream=True)
        except (StreamClosedError, H2Error):
            pass
        self.flush()

    def endStream(self, stream):
        if stream.endSent:
            return False
        stream.endSent = True
        headers = stream.takeEndHeaders()
        try:
            if headers is not None:
                self.conn.send_headers(stream.streamId, headers, end_stream=True)
            else:
                self.conn.end_stream(stream.streamId)
        except (StreamClosedError, H2Error):
            pass
        # The stream's base knows when the peer's half was delivered.
        return False

    def closeStream(self, stream):
        """Our half ends (if it has not) and, if the peer may still send, RST_STREAM."""
        streamId = stream.streamId
        h2stream = self.conn.streams.get(streamId)
        if h2stream is None:
            return
        try:
            if h2stream.state_machine.state in _LOCAL_OPEN and not stream.endSent:
                stream.endSent = True
                headers = stream.takeEndHeaders()
                if headers is not None:
                    self.conn.send_headers(streamId, headers, end_stream=True)
                else:
                    self.conn.end_stream(streamId)
            if h2stream.state_machine.state in _PEER_OPEN:
                # Go's server resets with NO_ERROR when a handler returns
                # early; a client that gives up cancels.
                self.conn.reset_stream(streamId, ErrorCodes.CANCEL if self.clientSide
                                       else ErrorCodes.NO_ERROR)
        except (StreamClosedError, H2Error):
            pass

    def resetStream(self, stream):
        self.resetStreamId(stream.streamId, getattr(stream, "resetCode", ErrorCodes.CANCEL))

    def resetStreamId(self, streamId, code):
        """
        RST_STREAM ``streamId`` unless h2 has closed it already: events come
        a read at a time, so a later frame of the same read (a reset, DATA
        after END_STREAM) may have closed the stream an earlier event names.
        """
        try:
            self.conn.reset_stream(streamId, code)
        except (StreamClosedError, H2Error):
            pass

    def isWritable(self):
        return not self._paused

    def setWaiting(self, stream, waiting):
        if waiting:
            self._waiting[stream] = None
        else:
            self._waiting.pop(stream, None)

    def streamGone(self, stream):
        self._waiting.pop(stream, None)
        if self.streams.get(stream.streamId) is stream:
            del self.streams[stream.streamId]
            self.streamClosed(stream)
            if not self.streams:
                if self.goAwaySent is not None or self.goAwayReceived is not None:
                    self.callSoon(self._closeIfDone)
                else:
                    self._updateIdle()

    def _closeIfDone(self):
        if not self.streams and not self.closed:
            self._closeTransport()

    def streamClosed(self, stream):
        """A stream is over (subclasses: a client starts queued requests)."""

    def callSoon(self, f, *args):
        self._soon.append((f, args))
        if not self._receiving and len(self._soon) == 1:
            self.clock.callLater(0, self._runSoon)

    def _runSoon(self):
        while self._soon:
            pending, self._soon = self._soon, []
            for f, args in pending:
                try:
                    f(*args)
                except Exception:
                    self.log.failure("HTTP/2: error in a deferred stream call {f}", f=f)

    def getPeer(self):
        peer = self._peerAddress
        if peer is None:
            peer = self._peerAddress = self.transport.getPeer()
        return peer

    def getHost(self):
        return self.transport.getHost()

    def _peer(self):
        try:
            peer = self.transport.getPeer()
        except Exception:
            return "?"
        host, port = getattr(peer, "host", None), getattr(peer, "port", None)
        return "%s:%s" % (host, port) if host is not None else str(peer)
