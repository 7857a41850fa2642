# -*- test-case-name: raftmux.test.test_muxado_v1_session -*-
"""
muxado v1 sessions through the same Twisted shell as v2: the generation-neutral
session tests run again for v1, then what only v1 has (SYN frames with stream
type and priority, the heartbeat extension, Go v1's GOAWAY) and what the
shell adds over both (typed-stream routing, priority scheduling, telling the
generations apart).
"""

from raftmux.test import test_muxado_session as common


class V1EchoTests(common.EchoTests):
    version = 1


class V1CloseTests(common.CloseTests):
    version = 1


class V1FlowControlTests(common.FlowControlTests):
    version = 1


class V1AcceptTests(common.AcceptTests):
    version = 1


# -- what only v1 has, and what the shell adds over both -------------------------

from dataclasses import replace  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.logger import Logger  # noqa: E402
from twisted.test import iosim  # noqa: E402
from twisted.trial.unittest import SynchronousTestCase  # noqa: E402

from raftmux.muxado import (  # noqa: E402
    ErrorCode,
    MuxadoConfig,
    MuxadoServerFactory,
    MuxadoSession,
    SessionClosed,
    StreamRefused,
    v1frames,  # noqa: E402
)
from raftmux.muxado import frames as v2frames  # noqa: E402
from raftmux.muxado.heartbeat import V1_HEARTBEAT_PRIORITY, V1_HEARTBEAT_TYPE  # noqa: E402
from raftmux.test.test_muxado_session import Collect, Echo, factoryOf, pair  # noqa: E402


def v1Frames(data):
    """Decode bytes a v1 session wrote."""
    return v1frames.FrameDecoder().receiveData(data)


class TypedStreamTests(SynchronousTestCase):
    """Stream type and priority are first-class on both generations."""

    def check(self, version):
        served, typed = [], []
        server, client, pump, _ = pair(factoryOf(served), None, version=version)
        server.streamFactories[7] = factoryOf(typed)
        a, b = Collect(b"untyped"), Collect(b"typed")
        # On v2 a typed session's streams all carry a type: 0 is "untyped".
        client.openStream(a, streamType=None if version == 1 else 0)
        client.openStream(b, streamType=7, priority=9)
        pump.flush()
        self.assertEqual([p.received for p in served], [b"untyped"])
        self.assertEqual([p.received for p in typed], [b"typed"])
        stream = typed[0].transport
        self.assertEqual(stream.streamType, 7)
        # v1 carries the priority on the wire; v2 only orders our own sending.
        self.assertEqual(stream.priority, 9 if version == 1 else 0)
        self.assertEqual(b.transport.priority, 9)

    def test_v1(self):
        self.check(1)

    def test_v2(self):
        self.check(2)

    def test_v1SynCarriesTypeAndPriority(self):
        transport = StringTransport()
        client = MuxadoSession(True, config=MuxadoConfig(version=1, heartbeat=False),
                               reactor=Clock())
        client.makeConnection(transport)
        client.openStream(Protocol(), streamType=0x1234, priority=5)
        client.openStream(Protocol())
        self.assertEqual(transport.value(),
                         bytes.fromhex("00080601 00000003 00000005 00001234"
                                       "00000001 00000005"))

    def test_v2TypeIsTheFirstFourBytesOfTheSynFrame(self):
        transport = StringTransport()
        client = MuxadoSession(True, reactor=Clock())
        client.makeConnection(transport)
        client.openStream(Collect(b"hi"), streamType=0x1234)
        [frame, more] = v2frames.FrameDecoder().receiveData(transport.value())
        self.assertEqual((frame.flags, frame.data), (v2frames.FLAG_SYN, b"\x00\x00\x12\x34"))
        self.assertEqual(more.data, b"hi")

    def test_badTypeOrPriority(self):
        client = MuxadoSession(True, reactor=Clock())
        client.makeConnection(StringTransport())
        self.failureResultOf(client.openStream(Protocol(), streamType=1 << 32), ValueError)
        self.failureResultOf(client.openStream(Protocol(), priority=1 << 31), ValueError)


class HeartbeatV1Tests(SynchronousTestCase):
    """v1's heartbeat extension, on by default as in every Go v1 session."""

    def test_onByDefaultBothWays(self):
        beats = []
        config = MuxadoConfig(version=1, heartbeat=True,
                              onHeartbeat=lambda rtt, timedOut: beats.append(timedOut))
        served = []
        server, client, pump, clock = pair(factoryOf(served), None,
                                           MuxadoConfig(heartbeat=True), config, version=1)
        pump.flush()
        # Each side opened one heartbeat stream (type 0xFFFFFEFF, Go's priority).
        for session in (client, server):
            mine = [s for s in session.streams.values() if session._conn.isLocal(s.streamId)]
            self.assertEqual([(s.streamType, s.priority) for s in mine],
                             [(V1_HEARTBEAT_TYPE, V1_HEARTBEAT_PRIORITY)])
        self.assertEqual(served, [])  # never given to the application
        for _ in range(20):
            clock.advance(3)
            pump.flush()
        self.assertEqual(beats, [False] * 20)
        self.assertIsNotNone(client.lastHeartbeatRTT)
        self.assertIsNone(client._closeReason)

    def test_silentPeerIsDropped(self):
        """A peer that takes our heartbeat stream but never echoes loses the session."""
        silent = []
        peerConfig = MuxadoConfig(answerHeartbeats=False, heartbeat=False)
        server, client, pump, clock = pair(None, None, peerConfig,
                                           MuxadoConfig(heartbeat=True, heartbeatInterval=3,
                                                        heartbeatTolerance=10),
                                           version=1,
                                           serverStreamFactories={
                                               V1_HEARTBEAT_TYPE: factoryOf(silent)})
        closed = client.whenClosed()
        pump.flush()
        self.assertEqual(len(silent), 1)
        for _ in range(5):
            clock.advance(3)
            pump.flush()
        reason = self.successResultOf(closed)
        self.assertIsInstance(reason, SessionClosed)
        self.assertEqual(reason.localCode, ErrorCode.HEARTBEAT_TIMEOUT)
        self.assertGreaterEqual(clock.seconds(), 13)

    def test_refusedHeartbeatEndsTheSession(self):
        """As in Go v1: our heartbeat stream reset means the session is dead."""
        server, client, pump, clock = pair(None, None, MuxadoConfig(answerHeartbeats=False,
                                                                    heartbeat=False),
                                           MuxadoConfig(heartbeat=True), version=1)
        closed = client.whenClosed()
        pump.flush()
        self.assertEqual(self.successResultOf(closed).localCode, ErrorCode.HEARTBEAT_TIMEOUT)

    def test_unregisteredExtensionIsRefused(self):
        server, client, pump, _ = pair(Factory.forProtocol(Echo), version=1)
        p = Collect(b"x")
        client.openStream(p, streamType=0xFFFFFFF0)
        pump.flush()
        self.assertEqual(p.reason.value.code, ErrorCode.STREAM_CLOSED)


class GoQuirkTests(SynchronousTestCase):
    def session(self, isClient=False, factory=None):
        transport = StringTransport()
        session = MuxadoSession(isClient, factory, MuxadoConfig(version=1, heartbeat=False),
                                version=1, reactor=Clock())
        session.makeConnection(transport)
        return session, transport

    def test_goBrokenGoAwayActedOnAtOnce(self):
        """Go v1's GOAWAY claims 16 debug bytes and sends none: no waiting for them."""
        client, transport = self.session(isClient=True)
        early, late = Collect(b"a"), Collect(b"b")
        client.openStream(early)
        client.openStream(late)
        client.dataReceived(bytes.fromhex("00180006 00000000 00000003 00000000"))
        self.assertIsNone(early.reason)
        late.reason.trap(StreamRefused)
        self.assertTrue(late.reason.value.retryable)
        self.failureResultOf(client.openStream(Protocol()), StreamRefused)

    def test_ourGoAwayIsCorrect(self):
        server, transport = self.session()
        server.close()
        self.assertEqual(transport.value(), bytes.fromhex("00080006 00000000 00000001 00000000"))
        self.assertTrue(transport.disconnecting)

    def test_synFinStreamDropsWrites(self):
        """A peer that opens with SYN|FIN will never read: our writes go nowhere, unbuffered."""
        served = []
        server, transport = self.session(factory=factoryOf(served))
        server.dataReceived(bytes.fromhex("00000101 00000003") + bytes.fromhex("0003 00 03 00000003")
                            + b"abc")
        [p] = served
        self.assertEqual(p.received, b"abc")
        transport.clear()
        p.transport.write(b"x" * 100000)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(p.transport.pendingBytes, 0)

    def test_neverSendsPri(self):
        """A Go v1 reader dies on PRI (type 5): no frame we write has it."""
        served = []
        server, client, pump, clock = pair(factoryOf(served, Echo), None,
                                           MuxadoConfig(heartbeat=True),
                                           MuxadoConfig(heartbeat=True), version=1)
        written = []
        original = client.transport.write
        client.transport.write = lambda data: (written.append(data), original(data))[1]
        for i in range(5):
            client.openStream(Collect(b"x" * 20000), priority=i)
        pump.flush()
        clock.advance(3)
        pump.flush()
        kinds = {f.__class__.__name__ for f in v1Frames(b"".join(written))}
        self.assertNotIn("Pri", kinds)
        self.assertTrue(kinds)


class GenerationTests(SynchronousTestCase):
    """One server takes both generations, or pins one."""

    def connect(self, clientVersion, serverVersion=None, clock=None):
        clock = clock or Clock()
        served = []
        factory = MuxadoServerFactory(factoryOf(served, Echo), version=serverVersion,
                                      reactor=clock)
        events = []
        server = factory.buildProtocol(None)
        server.log = Logger(observer=events.append)
        client = MuxadoSession(True, config=MuxadoConfig(version=clientVersion), reactor=clock)
        _, _, pump = iosim.connectedServerAndClient(lambda: server, lambda: client, clock=clock)
        return server, client, pump, events

    def test_serverTakesBoth(self):
        for version in (1, 2):
            server, client, pump, _ = self.connect(version)
            p = Collect(b"v%d" % version)
            client.openStream(p)
            pump.flush()
            self.assertEqual(server.version, version)
            self.assertEqual(p.received, b"v%d" % version)

    def test_pinnedServerRefusesTheOther(self):
        server, client, pump, events = self.connect(1, serverVersion=2)
        pump.flush()  # the v1 client's first frame is its heartbeat SYN
        self.successResultOf(client.whenClosed())
        [event] = [e for e in events if "refusing" in e["log_format"]]
        self.assertEqual((event["version"], event["accepted"]), (1, 2))

    def test_serverThatSpeaksFirstWaitsThenSpeaksV2(self):
        clock = Clock()
        server, client, pump, _ = self.connect(2, clock=clock)
        accepted = Collect()
        client.acceptStream(accepted)
        d = server.openStream(Collect(b"from the server"))
        pump.flush()
        self.assertNoResult(d)
        clock.advance(MuxadoConfig().versionWait)
        pump.flush()
        self.successResultOf(d)
        self.assertEqual(accepted.received, b"from the server")


class PriorityTests(SynchronousTestCase):
    """Under back-pressure, queued data of more urgent streams goes first."""

    def check(self, version):
        transport = StringTransport()
        config = MuxadoConfig(version=version, heartbeat=False)
        client = MuxadoSession(True, config=config, reactor=Clock())
        client.makeConnection(transport)
        streams = {}
        for priority in (1, 5, 3, 5):
            p = Collect()
            client.openStream(p, priority=priority)
            streams.setdefault(priority, []).append(p.transport.streamId)
        transport.clear()
        client.pauseProducing()
        for priority, sids in streams.items():
            for sid in sids:
                client.streams[sid].write(b"p%d" % priority)
        self.assertEqual(transport.value(), b"")
        client.resumeProducing()
        decoder = v1frames.FrameDecoder() if version == 1 else v2frames.FrameDecoder()
        order = [f.streamId for f in decoder.receiveData(transport.value())
                 if getattr(f, "data", b"")]
        self.assertEqual(order, streams[5] + streams[3] + streams[1])

    def test_v1(self):
        self.check(1)

    def test_v2(self):
        self.check(2)

    def test_equalsTakeTurns(self):
        """A stream the transport cut off goes behind its equals at the next resume."""
        client = MuxadoSession(True, config=MuxadoConfig(heartbeat=False), reactor=Clock())

        class Full(StringTransport):
            """Pushes back after every write, as a full TCP buffer would."""
            def write(self, data):
                StringTransport.write(self, data)
                client.pauseProducing()

            def writeSequence(self, data):
                self.write(b"".join(data))
        transport = Full()
        client.makeConnection(transport)
        a, b = Collect(), Collect()
        client.openStream(a)
        client.openStream(b)
        client.pauseProducing()
        for chunk in (b"a1", b"a2"):
            a.transport.write(chunk)
        for chunk in (b"b1", b"b2"):
            b.transport.write(chunk)
        for _ in range(4):
            client.resumeProducing()
        sent = [f.data for f in v2frames.FrameDecoder().receiveData(transport.value())]
        self.assertEqual(sent, [b"a1", b"b1", b"a2", b"b2"])


class RandomInputV1Tests(SynchronousTestCase):
    """Random bytes into v1 sessions: never a traceback, never unbounded output."""

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=512), st.sampled_from([None, 1]), st.booleans())
    def test_randomBytes(self, data, version, isClient):
        transport = StringTransport()
        session = MuxadoSession(isClient, Factory.forProtocol(Echo),
                                MuxadoConfig(version=1, heartbeat=False),
                                version=version, reactor=Clock())
        session.makeConnection(transport)
        for i in range(0, len(data), 7):
            session.dataReceived(data[i:i + 7])
        self.assertLess(len(transport.value()), 64 * 1024)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.sampled_from([
        v1frames.encodeSyn(3), v1frames.encodeSyn(5, priority=1, streamType=2),
        v1frames.encodeData(3, b"hello"), v1frames.encodeData(3, b"", fin=True),
        v1frames.encodeWndInc(3, 100), v1frames.encodeRst(3, 1),
        v1frames.encodeGoAway(3, 0, b""), v1frames.encodeData(5, b"x" * 100),
    ]), max_size=12))
    def test_wellFormedFramesInAnyOrder(self, frames):
        transport = StringTransport()
        session = MuxadoSession(False, Factory.forProtocol(Echo),
                                MuxadoConfig(heartbeat=False), version=1, reactor=Clock())
        session.makeConnection(transport)
        session.dataReceived(b"".join(frames))
        v1Frames(transport.value())  # whatever we wrote is valid v1


del replace
