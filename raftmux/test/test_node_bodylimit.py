# -*- test-case-name: raftmux.test.test_node_bodylimit -*-
"""
The node's Sites refuse a body larger than its route takes (413) from the
declared Content-Length, before any byte of it is read, or as a chunked
body passes the limit; a peer's snapshot has no limit.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from raftmux.node.api import NodeSite
from raftmux.node.config import NodeConfig
from raftmux.node.service import clientBodyLimit, peerBodyLimit


class Echo(Resource):
    """Answers with the size of the body it was given."""

    isLeaf = True

    def render(self, request):
        return b"%d" % (len(request.content.read()),)


class FakeNode:
    dialer = None


class BodyLimitTests(SynchronousTestCase):

    def connect(self, limit):
        site = NodeSite(FakeNode(), maxBodyBytes=limit, reactor=MemoryReactorClock())
        site.mount(Resource(), {b"kv": Echo(), b"raft": Echo()})
        proto = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5555))
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def test_declaredLengthOverTheLimit(self):
        proto, transport = self.connect(100)
        proto.dataReceived(b"PUT /kv/x HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "), transport.value())
        self.assertTrue(transport.disconnecting)

    def test_atTheLimitIsServed(self):
        proto, transport = self.connect(100)
        proto.dataReceived(b"PUT /kv/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                           + b"v" * 100)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 "), transport.value())
        self.assertTrue(transport.value().endswith(b"\r\n\r\n100"), transport.value())

    def test_chunkedBodyPassingTheLimit(self):
        proto, transport = self.connect(100)
        proto.dataReceived(b"PUT /kv/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.assertEqual(transport.value(), b"")
        proto.dataReceived(b"40\r\n" + b"v" * 64 + b"\r\n")
        self.assertEqual(transport.value(), b"")
        proto.dataReceived(b"40\r\n" + b"v" * 64 + b"\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "), transport.value())
        self.assertTrue(transport.disconnecting)

    def test_noLimit(self):
        proto, transport = self.connect(None)
        proto.dataReceived(b"PUT /kv/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
                           + b"v" * 1000)
        self.assertTrue(transport.value().endswith(b"\r\n\r\n1000"), transport.value())

    def test_peerLimitByPath(self):
        config = NodeConfig()
        limitFor = peerBodyLimit(config)
        self.assertIsNone(limitFor(b"/raft/snapshot"))
        self.assertGreater(limitFor(b"/raft"), 1024 * 1024 + config.maxRequestBytes)
        self.assertGreaterEqual(limitFor(b"/v3/kv/put"), clientBodyLimit(config))
        proto, transport = self.connect(limitFor)
        proto.dataReceived(b"POST /raft HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                           % (1 << 40,))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "), transport.value())


class HeadDeadlineTests(SynchronousTestCase):
    """A request head must be complete within the Site's ``headDeadline``."""

    def connect(self, deadline):
        clock = MemoryReactorClock()
        site = NodeSite(FakeNode(), maxBodyBytes=100, reactor=clock, headDeadline=deadline)
        site.mount(Resource(), {b"kv": Echo()})
        proto = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5555))
        transport = StringTransport()
        proto.makeConnection(transport)
        return clock, proto, transport

    def test_slowHeadClosed(self):
        clock, proto, transport = self.connect(30)
        proto.dataReceived(b"GET /kv/x HTTP/1.1\r\n")
        for _ in range(29):
            clock.advance(1)
            proto.dataReceived(b"X-Drip: 1\r\n")
        self.assertFalse(transport.disconnecting)
        clock.advance(1.5)
        self.assertTrue(transport.disconnecting)

    def test_headInTimeIsServed(self):
        clock, proto, transport = self.connect(30)
        proto.dataReceived(b"GET /kv/x HTTP/1.1\r\nHost: x\r\n")
        clock.advance(29)
        proto.dataReceived(b"\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 "), transport.value())
        clock.advance(50)      # idle, under twisted.web's 60 s idle timeout
        self.assertFalse(transport.disconnecting)
        # The next request on the connection has its own deadline.
        proto.dataReceived(b"GET /kv/y HTTP/1.1\r\n")
        clock.advance(31)
        self.assertTrue(transport.disconnecting)

    def test_noDeadline(self):
        clock, proto, transport = self.connect(None)
        proto.dataReceived(b"GET /kv/x HTTP/1.1\r\n")
        clock.advance(59)
        self.assertFalse(transport.disconnecting)
