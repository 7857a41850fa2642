# -*- test-case-name: raftmux.test.test_muxado_session -*-
"""
muxado sessions and streams as Twisted protocols and transports, driven in
memory (iosim, StringTransport, Clock) so every interleaving is reproducible.
"""

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from raftmux.muxado import (
    ErrorCode,
    MuxadoConfig,
    MuxadoSession,
    SessionClosed,
    StreamRefused,
    StreamReset,
    StreamsExhausted,
)
from raftmux.muxado.frames import FrameDecoder, GoAway, encodeData, encodeGoAway


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class Collect(Protocol):
    """Keeps what arrives; optionally writes something on connect."""

    def __init__(self, greeting=b""):
        self.greeting = greeting
        self.received = b""
        self.reason = None
        self.made = False

    def connectionMade(self):
        self.made = True
        if self.greeting:
            self.transport.write(self.greeting)

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.reason = reason


@implementer(IHalfCloseableProtocol)
class HalfCloseCollect(Collect):
    """On the peer's FIN, answers with how much it got, then closes."""

    readLost = False
    writeLost = False

    def readConnectionLost(self):
        self.readLost = True
        self.transport.write(b"got %d" % (len(self.received),))
        self.transport.loseConnection()

    def writeConnectionLost(self):
        self.writeLost = True


@implementer(IPushProducer)
class Producer:
    def __init__(self):
        self.events = []

    def pauseProducing(self):
        self.events.append("pause")

    def resumeProducing(self):
        self.events.append("resume")

    def stopProducing(self):
        self.events.append("stop")


def pair(serverFactory=None, clientFactory=None, serverConfig=None, clientConfig=None,
         version=2, serverStreamFactories=None):
    """
    A server and a client session of ``version``, connected in memory.  The
    server tells the generation from the client's first frame, as
    ``MuxadoServerFactory`` does, unless it must speak first.  v1 sessions
    run no heartbeat here unless the config asks (it would open streams the
    tests do not expect).
    """
    clock = Clock()
    clientConfig = replace(clientConfig or MuxadoConfig(), version=version)
    serverConfig = serverConfig or MuxadoConfig()
    if version == 1:
        if clientConfig.heartbeat is None:
            clientConfig = replace(clientConfig, heartbeat=False)
        if serverConfig.heartbeat is None:
            serverConfig = replace(serverConfig, heartbeat=False)
    server = MuxadoSession(False, serverFactory, serverConfig, version=version, reactor=clock,
                           streamFactories=serverStreamFactories)
    client = MuxadoSession(True, clientFactory, clientConfig, reactor=clock)
    _, _, pump = iosim.connectedServerAndClient(lambda: server, lambda: client, clock=clock)
    return server, client, pump, clock


class PairMixin:
    """Tests that hold for both generations; ``version`` picks one."""

    version = 2

    def pair(self, *args, **kwargs):
        return pair(*args, version=self.version, **kwargs)


def factoryOf(protocols, cls=Collect, *args):
    """A factory that builds ``cls`` instances and records them in ``protocols``."""
    def build():
        p = cls(*args)
        protocols.append(p)
        return p
    return Factory.forProtocol(build)


class EchoTests(PairMixin, SynchronousTestCase):

    def test_clientOpensServerEchoes(self):
        server, client, pump, _ = self.pair(Factory.forProtocol(Echo))
        c = Collect(b"hello")
        self.assertIs(self.successResultOf(client.openStream(c)), c)
        pump.flush()
        self.assertEqual(c.received, b"hello")
        self.assertEqual(c.transport.streamId, 3)

    def test_serverOpensClientAnswers(self):
        server, client, pump, _ = self.pair(None, Factory.forProtocol(Echo))
        c = Collect(b"from server")
        server.openStream(c)
        pump.flush()
        self.assertEqual(c.received, b"from server")
        self.assertEqual(c.transport.streamId, 2)

    def test_manyStreamsKeepTheirBytesApart(self):
        server, client, pump, _ = self.pair(Factory.forProtocol(Echo))
        streams = [Collect(b"%d" % i * 1000) for i in range(20)]
        for s in streams:
            client.openStream(s)
        pump.flush()
        for i, s in enumerate(streams):
            self.assertEqual(s.received, b"%d" % i * 1000)

    def test_bulkBeyondTheWindow(self):
        server, client, pump, _ = self.pair(Factory.forProtocol(Echo))
        c = Collect()
        client.openStream(c)
        payload = bytes(range(256)) * 8192   # 2 MiB, 8 windows
        c.transport.write(payload)
        pump.flush()
        self.assertEqual(c.received, payload)

    def test_addressesAreTheSessionTransports(self):
        server, client, pump, _ = self.pair(Factory.forProtocol(Echo))
        c = Collect()
        client.openStream(c)
        self.assertEqual(c.transport.getPeer(), client.transport.getPeer())
        self.assertEqual(c.transport.getHost(), client.transport.getHost())


class CloseTests(PairMixin, SynchronousTestCase):

    def test_halfCloseBothWays(self):
        served = []
        server, client, pump, _ = self.pair(factoryOf(served, HalfCloseCollect))
        c = HalfCloseCollect(b"abc")
        client.openStream(c)
        pump.flush()
        c.transport.loseWriteConnection()
        pump.flush()
        self.assertTrue(c.writeLost)
        [s] = served
        self.assertTrue(s.readLost)
        self.assertEqual(c.received, b"got 3")
        c.reason.trap(ConnectionDone)
        s.reason.trap(ConnectionDone)
        self.assertEqual(server.streams, {})
        self.assertEqual(client.streams, {})

    def test_finClosesANonHalfCloseableProtocol(self):
        served = []
        server, client, pump, _ = self.pair(factoryOf(served))
        c = HalfCloseCollect(b"x")
        client.openStream(c)
        pump.flush()
        c.transport.loseWriteConnection()
        pump.flush()
        served[0].reason.trap(ConnectionDone)
        c.reason.trap(ConnectionDone)

    def test_loseConnectionSendsBufferedBytesFirst(self):
        served = []
        config = MuxadoConfig(maxWindowSize=1000)
        server, client, pump, _ = self.pair(factoryOf(served, HalfCloseCollect), None, config, config)
        c = Collect()
        client.openStream(c)
        c.transport.write(b"y" * 5500)
        c.transport.loseConnection()
        self.assertIsNone(c.reason)   # still waiting for window
        pump.flush()
        self.assertEqual(len(served[0].received), 5500)
        self.assertTrue(served[0].readLost)
        c.reason.trap(ConnectionDone)

    def test_abortSendsRst(self):
        served = []
        server, client, pump, _ = self.pair(factoryOf(served))
        c = Collect(b"x")
        client.openStream(c)
        pump.flush()
        c.transport.abortConnection()
        pump.flush()
        c.reason.trap(ConnectionAborted)
        error = served[0].reason.trap(StreamReset) and served[0].reason.value
        self.assertEqual((error.code, error.remote), (ErrorCode.STREAM_CANCELLED, True))

    def test_writesAfterCloseAreDropped(self):
        server, client, pump, _ = self.pair(Factory.forProtocol(Echo))
        c = Collect()
        client.openStream(c)
        c.transport.loseConnection()
        c.transport.write(b"late")
        pump.flush()
        self.assertEqual(c.received, b"")


class FlowControlTests(PairMixin, SynchronousTestCase):

    def test_pausedStreamDoesNotStallOthers(self):
        served = []
        config = MuxadoConfig(maxWindowSize=4096)
        server, client, pump, _ = self.pair(factoryOf(served), None, config, config)
        slow, fast = Collect(b"s"), Collect(b"f")
        client.openStream(slow)
        client.openStream(fast)
        pump.flush()
        slowServed, fastServed = served
        slowServed.transport.pauseProducing()
        slow.transport.write(b"a" * 20000)
        fast.transport.write(b"b" * 20000)
        pump.flush()
        self.assertEqual(len(fastServed.received), 20001)
        self.assertEqual(len(slowServed.received), 1)
        # Bytes held for the paused protocol never exceed the window.
        held = sum(len(d) for d in slowServed.transport._inbox)
        self.assertLessEqual(held, 4096)
        self.assertGreater(held, 0)
        slowServed.transport.resumeProducing()
        pump.flush()
        self.assertEqual(len(slowServed.received), 20001)

    def test_streamProducerPausedWithoutWindow(self):
        served = []
        config = MuxadoConfig(maxWindowSize=100000)
        server, client, pump, _ = self.pair(factoryOf(served), None, config, config)
        c = Collect(b"x")
        client.openStream(c)
        producer = Producer()
        c.transport.registerProducer(producer, True)
        pump.flush()
        served[0].transport.pauseProducing()
        c.transport.write(b"z" * 99999)       # fills the window
        c.transport.write(b"z" * 70000)       # waits: above the high-water mark
        self.assertEqual(producer.events, ["pause"])
        pump.flush()
        served[0].transport.resumeProducing()
        pump.flush()
        self.assertEqual(producer.events, ["pause", "resume"])
        self.assertEqual(len(served[0].received), 170000)
        c.transport.unregisterProducer()

    def test_transportBackPressurePausesStreamProducers(self):
        transport = StringTransport()
        session = MuxadoSession(True, reactor=Clock())
        session.makeConnection(transport)
        self.assertIs(transport.producer, session)
        c = Collect()
        session.openStream(c)
        producer = Producer()
        c.transport.registerProducer(producer, True)
        session.pauseProducing()
        session.resumeProducing()
        self.assertEqual(producer.events, ["pause", "resume"])
        session.pauseProducing()
        c2 = Collect()
        session.openStream(c2)
        producer2 = Producer()
        c2.transport.registerProducer(producer2, True)
        self.assertEqual(producer2.events, ["pause"])

    def test_pullProducerDriven(self):
        """twisted.web's FileSender-style pull producers get resumeProducing calls."""
        served = []
        server, client, pump, _ = self.pair(factoryOf(served))
        c = Collect(b"x")
        client.openStream(c)

        class Pull:
            calls = 0

            def resumeProducing(self):
                self.calls += 1
                if self.calls <= 5:
                    c.transport.write(b"p" * 1000)
                else:
                    c.transport.unregisterProducer()

            def stopProducing(self):
                pass

        pull = Pull()
        c.transport.registerProducer(pull, False)
        pump.flush()
        self.assertEqual(len(served[0].received), 5001)
        self.assertEqual(pull.calls, 6)


class GoAwayTests(SynchronousTestCase):

    def test_closeSendsGoAwayThenClosesTransport(self):
        transport = StringTransport()
        session = MuxadoSession(False, version=2, reactor=Clock())
        session.makeConnection(transport)
        session.close()
        self.assertEqual(transport.value(), encodeGoAway(1, 0, b"no error"))
        self.assertTrue(transport.disconnecting)

    def test_retryableStreamsAfterGoAway(self):
        served = []
        server, client, pump, _ = pair(factoryOf(served))
        processed, unseen = Collect(b"one"), Collect()
        client.openStream(processed)
        pump.flush()
        client.openStream(unseen)
        unseen.transport.write(b"two")
        # The server goes away having seen only stream 3.
        server.goAway(ErrorCode.NO_ERROR, b"bye")
        pump.flush()
        refused = unseen.reason.trap(StreamRefused) and unseen.reason.value
        self.assertTrue(refused.retryable)
        self.assertEqual(refused.code, ErrorCode.REMOTE_GONE_AWAY)
        closed = processed.reason.value
        self.assertIsInstance(closed, SessionClosed)
        self.assertNotIsInstance(closed, StreamRefused)
        self.assertEqual((closed.remoteCode, closed.remoteDebug), (0, b"bye"))
        failure = self.failureResultOf(client.openStream(Collect()))
        failure.trap(SessionClosed)
        result = self.successResultOf(client.whenClosed())
        self.assertEqual(result.localCode, ErrorCode.PEER_EOF)

    def test_openAfterGoAwayReceivedIsRetryable(self):
        transport = StringTransport()
        session = MuxadoSession(True, reactor=Clock())
        session.makeConnection(transport)
        session.dataReceived(encodeGoAway(0, 0, b"draining"))
        failure = self.failureResultOf(session.openStream(Collect()))
        self.assertTrue(failure.trap(StreamRefused) and failure.value.retryable)

    def test_streamsExhausted(self):
        server, client, pump, _ = pair()
        client._conn._nextId = 0x7FFFFFFF
        self.failureResultOf(client.openStream(Collect()), StreamsExhausted)


class AcceptTests(PairMixin, SynchronousTestCase):

    def test_acceptStreamWithoutFactory(self):
        server, client, pump, _ = self.pair()
        opened = Collect(b"knock")
        server.openStream(opened)
        pump.flush()
        c = Collect()
        self.assertIs(self.successResultOf(client.acceptStream(c)), c)
        self.assertEqual(c.received, b"knock")
        waiting = client.acceptStream(Collect())
        self.assertNoResult(waiting)
        server.openStream(Collect(b"second"))
        pump.flush()
        self.assertEqual(self.successResultOf(waiting).received, b"second")

    def test_backlogFullRefuses(self):
        server, client, pump, _ = self.pair(clientConfig=MuxadoConfig(acceptBacklog=2))
        opened = [Collect(b"s%d" % i) for i in range(3)]
        for o in opened:
            server.openStream(o)
        pump.flush()
        self.assertIsNone(opened[0].reason)
        self.assertIsNone(opened[1].reason)
        refused = opened[2].reason.trap(StreamRefused) and opened[2].reason.value
        # v1 has one refusal code on the wire (RefusedStream).
        self.assertEqual(refused.code, ErrorCode.ACCEPT_QUEUE_FULL if self.version == 2
                         else ErrorCode.STREAM_REFUSED)
        self.assertTrue(refused.retryable)

    def test_factoryReturningNoneRefuses(self):
        server, client, pump, _ = self.pair(Factory.forProtocol(lambda: None))
        c = Collect(b"x")
        server_factory = server.streamFactory
        server_factory.buildProtocol = lambda addr: None
        client.openStream(c)
        pump.flush()
        self.assertEqual(c.reason.value.code, ErrorCode.STREAM_REFUSED)


class HeartbeatTests(SynchronousTestCase):

    def test_pingsAreEchoed(self):
        beats = []
        config = MuxadoConfig(heartbeatInterval=10, heartbeatTolerance=15,
                              onHeartbeat=lambda rtt, timedOut: beats.append((rtt, timedOut)))
        server, client, pump, clock = pair(Factory.forProtocol(Echo), None, None, config)
        pump.flush()
        for _ in range(3):
            clock.advance(10)
            pump.flush()
        self.assertEqual(beats, [(0, False)] * 3)
        self.assertEqual(server.streams, {3: server.streams[3]})
        self.assertEqual(client.lastHeartbeatRTT, 0)

    def test_heartbeatStreamOpensWithTypeInSynFrame(self):
        transport = StringTransport()
        session = MuxadoSession(True, config=MuxadoConfig(heartbeatInterval=10),
                                reactor=Clock())
        session.makeConnection(transport)
        self.assertEqual(transport.value(), encodeData(3, b"\xff\xff\xff\xff", syn=True))

    def test_silentPeerClosesSession(self):
        beats = []
        config = MuxadoConfig(heartbeatInterval=10, heartbeatTolerance=15,
                              onHeartbeat=lambda rtt, timedOut: beats.append((rtt, timedOut)))
        server, client, pump, clock = pair(None, None, MuxadoConfig(answerHeartbeats=False),
                                           config)
        pump.flush()
        clock.advance(10)
        pump.flush()
        clock.advance(15)
        pump.flush()
        self.assertEqual(beats, [(0, True)])
        self.assertIsNotNone(client._closeReason)

    def test_ordinaryStreamsAreNotMistakenForHeartbeats(self):
        served = []
        server, client, pump, _ = pair(factoryOf(served))
        c = Collect(b"\xff\xff\xff\xfe and more")
        client.openStream(c)
        pump.flush()
        self.assertEqual(served[0].received, b"\xff\xff\xff\xfe and more")


class BadInputTests(SynchronousTestCase):
    """Bad frames: the spec's GOAWAY code, then the transport is closed."""

    def feed(self, data, client=False):
        transport = StringTransport()
        session = MuxadoSession(client, Factory.forProtocol(Echo), reactor=Clock(), version=2)
        session.makeConnection(transport)
        session.dataReceived(data)
        frames = FrameDecoder().receiveData(transport.value())
        return session, transport, frames

    def assertGoAway(self, data, code):
        session, transport, frames = self.feed(data)
        self.assertIsInstance(frames[-1], GoAway)
        self.assertEqual(frames[-1].code, code)
        self.assertTrue(transport.disconnecting)
        return session

    def test_streamZero(self):
        self.assertGoAway(bytes.fromhex("0000011000000000") + b"x", ErrorCode.PROTOCOL_ERROR)

    def test_wrongParitySyn(self):
        self.assertGoAway(encodeData(2, b"x", syn=True), ErrorCode.PROTOCOL_ERROR)

    def test_zeroWndInc(self):
        self.assertGoAway(bytes.fromhex("000004200000000300000000"), ErrorCode.PROTOCOL_ERROR)

    def test_badRstLength(self):
        self.assertGoAway(bytes.fromhex("00000300000000030000"), ErrorCode.FRAME_SIZE_ERROR)

    def test_goAwayOnStream(self):
        self.assertGoAway(bytes.fromhex("0000083000000003") + bytes(8), ErrorCode.PROTOCOL_ERROR)

    def test_sessionBufferLimitStopsReading(self):
        """
        A peer that opens many streams whose protocols do not read: past
        ``maxBufferedBytes`` held in all, the session stops reading its
        transport, and reads again once the protocols took half of it back.
        """

        class Paused(Collect):
            def connectionMade(self):
                self.transport.pauseProducing()

        transport = StringTransport()
        session = MuxadoSession(False, Factory.forProtocol(Paused),
                                MuxadoConfig(version=2, maxBufferedBytes=100000),
                                reactor=Clock())
        session.makeConnection(transport)
        chunk = b"x" * 60000
        session.dataReceived(encodeData(3, chunk, syn=True))
        self.assertEqual(session.bufferedBytes, 60000)
        self.assertEqual(transport.producerState, "producing")
        session.dataReceived(encodeData(5, chunk, syn=True))
        self.assertEqual(session.bufferedBytes, 120000)
        self.assertEqual(transport.producerState, "paused")
        first, second = (session.streams[i] for i in (3, 5))
        first.resumeProducing()
        self.assertEqual(first.protocol.received, chunk)
        self.assertEqual(session.bufferedBytes, 60000)
        self.assertEqual(transport.producerState, "paused")   # until half is taken
        second.resumeProducing()
        self.assertEqual(session.bufferedBytes, 0)
        self.assertEqual(transport.producerState, "producing")
        # Streams ended with bytes still held give them back too.
        session.dataReceived(encodeData(7, chunk, syn=True) + encodeData(9, chunk, syn=True))
        self.assertEqual(transport.producerState, "paused")
        session.streams[7].abortConnection()
        session.streams[9].abortConnection()
        self.assertEqual(session.bufferedBytes, 0)
        self.assertEqual(transport.producerState, "producing")

    def test_noSessionBufferLimitByDefault(self):
        class Paused(Collect):
            def connectionMade(self):
                self.transport.pauseProducing()

        transport = StringTransport()
        session = MuxadoSession(False, Factory.forProtocol(Paused), version=2, reactor=Clock())
        session.makeConnection(transport)
        for i in range(8):
            session.dataReceived(encodeData(3 + 2 * i, b"x" * 200000, syn=True))
        self.assertEqual(session.bufferedBytes, 1600000)
        self.assertEqual(transport.producerState, "producing")

    def test_streamsFailWithSessionClosed(self):
        transport = StringTransport()
        session = MuxadoSession(False, Factory.forProtocol(Collect), version=2, reactor=Clock())
        session.makeConnection(transport)
        session.dataReceived(encodeData(3, b"hi", syn=True))
        [stream] = session.streams.values()
        session.dataReceived(bytes.fromhex("0000011000000000") + b"x")
        session.connectionLost(ConnectionDone())
        reason = stream.protocol.reason
        self.assertEqual(reason.value.localCode, ErrorCode.PROTOCOL_ERROR)

    def test_truncatedFrameThenEof(self):
        transport = StringTransport()
        session = MuxadoSession(False, Factory.forProtocol(Collect), version=2, reactor=Clock())
        session.makeConnection(transport)
        session.dataReceived(encodeData(3, b"hello world", syn=True)[:-2])
        [stream] = session.streams.values()
        session.connectionLost(ConnectionDone())
        self.assertEqual(stream.protocol.reason.value.localCode, ErrorCode.PEER_EOF)


class MetricsTests(SynchronousTestCase):

    def test_sessionAndStreamCounters(self):
        from prometheus_client import CollectorRegistry
        registry = CollectorRegistry()
        clock = Clock()
        server = MuxadoSession(False, Factory.forProtocol(Echo), version=2, reactor=clock, registry=registry)
        client = MuxadoSession(True, reactor=clock, registry=registry)
        _, _, pump = iosim.connectedServerAndClient(lambda: server, lambda: client, clock=clock)
        for _ in range(3):
            client.openStream(Collect(b"x"))
        pump.flush()
        value = registry.get_sample_value
        self.assertEqual(value("raftmux_muxado_sessions", {"role": "server"}), 1)
        self.assertEqual(value("raftmux_muxado_streams_opened_total",
                               {"role": "client", "opener": "local"}), 3)
        self.assertEqual(value("raftmux_muxado_streams_opened_total",
                               {"role": "server", "opener": "remote"}), 3)
        server.dataReceived(bytes.fromhex("0000011000000000") + b"x")
        pump.flush()
        self.assertEqual(value("raftmux_muxado_protocol_errors_total",
                               {"role": "server", "code": "PROTOCOL_ERROR"}), 1)
        self.assertEqual(value("raftmux_muxado_goaways_received_total", {"role": "client"}), 1)
        self.assertEqual(value("raftmux_muxado_sessions", {"role": "server"}), 0)


class ConfigTests(SynchronousTestCase):

    def test_windowUpdateThresholdFromConfig(self):
        from raftmux.muxado.frames import encodeWndInc
        transport = StringTransport()
        session = MuxadoSession(False, Factory.forProtocol(Collect), version=2, reactor=Clock(),
                                config=MuxadoConfig(windowUpdateThreshold=10))
        session.makeConnection(transport)
        session.dataReceived(encodeData(3, b"123456789", syn=True))
        self.assertEqual(transport.value(), b"")
        session.dataReceived(encodeData(3, b"0"))
        self.assertEqual(transport.value(), encodeWndInc(3, 10))


class RandomInputTests(SynchronousTestCase):
    """Whatever a peer sends, the session answers in protocol terms, never with an exception."""

    @settings(max_examples=150, deadline=None)
    @given(st.binary(max_size=600), st.lists(st.integers(1, 64), max_size=12))
    def test_randomBytes(self, junk, cuts):
        transport = StringTransport()
        session = MuxadoSession(False, Factory.forProtocol(Echo), version=2, reactor=Clock(),
                                config=MuxadoConfig(maxWindowSize=64))
        session.makeConnection(transport)
        pos = 0
        for size in cuts + [len(junk)]:
            session.dataReceived(junk[pos:pos + size])
            pos += size
        frames = FrameDecoder().receiveData(transport.value())
        goAways = [f for f in frames if isinstance(f, GoAway)]
        # At most one GOAWAY, always last, and then the transport is closing.
        self.assertLessEqual(len(goAways), 1)
        if goAways:
            self.assertIs(frames[-1], goAways[0])
            self.assertTrue(transport.disconnecting)
        # Held bytes stay within the window per stream.
        for stream in session.streams.values():
            self.assertLessEqual(sum(len(d) for d in stream._inbox), 64)
        session.connectionLost(ConnectionDone())

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.integers(1, 40), st.booleans(), st.booleans(),
                              st.binary(max_size=100)), max_size=30))
    def test_wellFormedFramesInAnyOrder(self, frames):
        """Valid frames in nonsensical orders (data before SYN, after FIN...) never raise."""
        transport = StringTransport()
        session = MuxadoSession(False, Factory.forProtocol(Echo), version=2, reactor=Clock())
        session.makeConnection(transport)
        for streamId, syn, fin, data in frames:
            session.dataReceived(encodeData(streamId, data, fin=fin, syn=syn))
        for f in FrameDecoder().receiveData(transport.value()):
            if isinstance(f, GoAway):
                self.assertIn(f.code, (ErrorCode.PROTOCOL_ERROR,))
        session.connectionLost(ConnectionDone())
