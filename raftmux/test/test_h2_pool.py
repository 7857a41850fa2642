# -*- test-case-name: raftmux.test.test_h2_pool -*-
"""
``H2ConnectionPool`` in memory: connections dialled over iosim with a
MemoryReactorClock.  One connection per origin carries many streams;
another is dialled when the server's MAX_CONCURRENT_STREAMS is reached;
beyond ``maxConnectionsPerOrigin`` requests wait for a slot; dial failures,
timeouts, GOAWAY, ALPN that did not choose h2.
"""

from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError, TimeoutError
from twisted.internet.interfaces import INegotiated
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.test.iosim import FakeTransport, connect
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from raftmux.h2 import ConnectionGoneAway, H2Config, H2ConnectionPool, NotHTTP2, Origin
from raftmux.test.h2helpers import TestServer
from raftmux.test.test_h2_connection import Recorder, request

ORIGIN = Origin(b"http", b"example.test", 80)
OTHER = Origin(b"http", b"other.test", 80)


class Dialer:
    """The pool's endpoint factory: each connect makes a server connection over iosim."""

    def __init__(self, clock, serverConfig=None):
        self.clock = clock
        self.server = TestServer(serverConfig, clock=clock)
        self.pumps = []
        self.servers = []
        self.dials = []
        self.mode = "connect"

    def __call__(self, origin):
        self.dials.append(origin)
        return self

    def connect(self, factory):
        if self.mode == "never":
            return defer.Deferred()
        if self.mode == "refuse":
            return defer.fail(ConnectionRefusedError())
        client = factory.buildProtocol(None)
        server = self.server.factory.buildProtocol(None)
        self.servers.append(server)
        self.pumps.append(connect(server, FakeTransport(server, True), client,
                                  FakeTransport(client, False), clock=self.clock))
        return defer.succeed(client)

    def flush(self):
        for pump in self.pumps:
            pump.flush()


def makePool(serverConfig=None, **kw):
    clock = MemoryReactorClock()
    dialer = Dialer(clock, serverConfig)
    pool = H2ConnectionPool(clock, connectTimeout=kw.pop("connectTimeout", 5),
                            endpointFactory=dialer, **kw)
    return clock, dialer, pool


def opened(testCase, d):
    results = []
    d.addBoth(results.append)
    testCase.assertTrue(results, "the stream did not open")
    return results[0]


class PoolTests(SynchronousTestCase):
    def test_oneConnectionManyStreams(self):
        clock, dialer, pool = makePool()
        answers = []
        for _ in range(30):
            answer = Recorder()
            answers.append(answer)
            pool.openStream(ORIGIN, request(b"/hello", b"GET"), answer, endStream=True)
        dialer.flush()
        self.assertEqual([a.status for a in answers], [200] * 30)
        self.assertEqual(len(dialer.dials), 1)
        self.assertEqual(len(pool.connections(ORIGIN)), 1)

    def test_originsApart(self):
        clock, dialer, pool = makePool()
        pool.openStream(ORIGIN, request(b"/hello", b"GET"), Recorder(), endStream=True)
        pool.openStream(OTHER, request(b"/hello", b"GET"), Recorder(), endStream=True)
        self.assertEqual(dialer.dials, [ORIGIN, OTHER])

    def test_secondConnectionWhenTheStreamLimitIsReached(self):
        """
        The server allows 2 streams: with its SETTINGS known, the third
        request dials a second connection; past maxConnectionsPerOrigin,
        requests wait in the pool and start as streams finish.
        """
        clock, dialer, pool = makePool(H2Config(maxConcurrentStreams=2),
                                       maxConnectionsPerOrigin=2)
        opened(self, pool.openStream(ORIGIN, request(b"/hello", b"GET"), Recorder(),
                                     endStream=True))
        dialer.flush()  # the server's SETTINGS are known now
        holds = [pool.openStream(ORIGIN, request(b"/hold", b"GET"), Recorder(),
                                 endStream=True) for _ in range(5)]
        dialer.flush()
        self.assertEqual(len(dialer.dials), 2)
        self.assertEqual(len(dialer.server.held), 4)
        self.assertNoResult(holds[4])
        dialer.server.held[0].transport.respond(200)
        dialer.flush()
        self.assertIsNotNone(opened(self, holds[4]))
        self.assertEqual(len(dialer.server.held), 5)
        self.assertEqual(len(dialer.dials), 2)

    def test_waitingRequestCancelled(self):
        clock, dialer, pool = makePool(H2Config(maxConcurrentStreams=1),
                                       maxConnectionsPerOrigin=1)
        opened(self, pool.openStream(ORIGIN, request(b"/hello", b"GET"), Recorder(),
                                     endStream=True))
        dialer.flush()
        pool.openStream(ORIGIN, request(b"/hold", b"GET"), Recorder(), endStream=True)
        waiting = pool.openStream(ORIGIN, request(b"/hold", b"GET"), Recorder(),
                                  endStream=True)
        waiting.cancel()
        self.failureResultOf(waiting, defer.CancelledError)
        dialer.flush()
        dialer.server.held[0].transport.respond(200)
        dialer.flush()
        self.assertEqual(len(dialer.server.held), 1)

    def test_dialFailureFailsWhatWaits(self):
        clock, dialer, pool = makePool()
        dialer.mode = "refuse"
        d = pool.openStream(ORIGIN, request(b"/hello", b"GET"), Recorder(), endStream=True)
        self.failureResultOf(d, ConnectionRefusedError)
        dialer.mode = "connect"
        d = pool.openStream(ORIGIN, request(b"/hello", b"GET"), Recorder(), endStream=True)
        self.assertIsNotNone(opened(self, d))

    def test_connectTimeout(self):
        clock, dialer, pool = makePool(connectTimeout=3)
        dialer.mode = "never"
        d = pool.openStream(ORIGIN, request(b"/hello", b"GET"), Recorder(), endStream=True)
        clock.advance(2.9)
        self.assertNoResult(d)
        clock.advance(0.1)
        self.assertIn("timed out", str(self.failureResultOf(d, TimeoutError).value))

    def test_goAwayThenANewConnection(self):
        clock, dialer, pool = makePool()
        opened(self, pool.openStream(ORIGIN, request(b"/hello", b"GET"), Recorder(),
                                     endStream=True))
        dialer.flush()
        closed = dialer.servers[0].goAway()
        dialer.flush()
        self.successResultOf(closed)
        self.assertEqual(pool.connections(ORIGIN), [])
        answer = Recorder()
        pool.openStream(ORIGIN, request(b"/hello", b"GET"), answer, endStream=True)
        dialer.flush()
        self.assertEqual((answer.status, len(dialer.dials)), (200, 2))

    def test_connectionLostRedialsForWhatWaits(self):
        """Requests waiting in the pool outlive a lost connection: they wait for a new dial."""
        clock, dialer, pool = makePool(H2Config(maxConcurrentStreams=1),
                                       maxConnectionsPerOrigin=1)
        opened(self, pool.openStream(ORIGIN, request(b"/hello", b"GET"), Recorder(),
                                     endStream=True))
        dialer.flush()
        first = Recorder()
        pool.openStream(ORIGIN, request(b"/hold", b"GET"), first, endStream=True)
        queued = pool.openStream(ORIGIN, request(b"/hold", b"GET"), Recorder(),
                                 endStream=True)
        dialer.flush()
        dialer.mode = "never"
        pool.connections(ORIGIN)[0].transport.loseConnection()
        dialer.flush()
        self.assertIsNotNone(first.reason)
        self.assertNoResult(queued)  # it waits for the new dial
        clock.advance(5)
        self.failureResultOf(queued, TimeoutError)

    def test_closeCachedConnections(self):
        clock, dialer, pool = makePool()
        for origin in (ORIGIN, OTHER):
            opened(self, pool.openStream(origin, request(b"/hello", b"GET"), Recorder(),
                                         endStream=True))
        dialer.flush()
        d = pool.closeCachedConnections()
        dialer.flush()
        self.successResultOf(d)
        self.assertEqual((pool.connections(ORIGIN), pool.connections(OTHER)), ([], []))


@implementer(INegotiated)
class _NegotiatedTransport(StringTransport):
    negotiatedProtocol = b"http/1.1"


class ALPNTests(SynchronousTestCase):
    def test_http11ChosenFailsWithNotHTTP2(self):
        """Over TLS the preface waits for ALPN; http/1.1 fails the dial with NotHTTP2."""
        clock = MemoryReactorClock()
        transports = []

        class TLSLike:
            def connect(self, factory):
                proto = factory.buildProtocol(None)
                transport = _NegotiatedTransport()
                transports.append((proto, transport))
                proto.makeConnection(transport)
                return defer.succeed(proto)

        pool = H2ConnectionPool(clock, endpointFactory=lambda origin: TLSLike())
        origin = Origin(b"https", b"example.test", 443)
        d = pool.openStream(origin, request(b"/", b"GET"), Recorder(), endStream=True)
        proto, transport = transports[0]
        self.assertEqual(transport.value(), b"")  # no preface before ALPN's answer
        self.assertNoResult(d)
        proto.handshakeCompleted()
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)
        proto.connectionLost(None)
        self.assertEqual(self.failureResultOf(d, NotHTTP2).value.negotiated, b"http/1.1")
        self.assertEqual(pool.connections(origin), [])

    def test_goneAwayConnectionNotReused(self):
        clock, dialer, pool = makePool()
        opened(self, pool.openStream(ORIGIN, request(b"/hold", b"GET"), Recorder(),
                                     endStream=True))
        dialer.flush()
        proto = pool.connections(ORIGIN)[0]
        dialer.servers[0].goAway()
        dialer.flush()
        self.assertFalse(proto.available)
        after = proto.openStream(request(), Recorder())
        self.assertTrue(self.failureResultOf(after, ConnectionGoneAway).value.retryable)
        answer = Recorder()
        pool.openStream(ORIGIN, request(b"/hello", b"GET"), answer, endStream=True)
        dialer.flush()
        self.assertEqual(answer.status, 200)
        self.assertEqual(len(dialer.dials), 2)
