# -*- test-case-name: raftmux.test.test_gossip_loopback -*-
"""
raftmux.gossip on real loopback sockets: against curl, nghttp and h2load
(each skipped when its binary is missing), transport to transport over
h2c and over TLS with ALPN h2, and behind the sniffer next to a Site.
External tools run through getProcessOutputAndValue so the reactor keeps
serving while they talk to it.
"""

import os
import shutil

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from raftmux.gossip import MESSAGE_PATH, GossipTransport, encodeFrame

URL_PATH = MESSAGE_PATH.decode()


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class Reader(Protocol):
    """Collects ``expected`` bytes, then fires ``done``."""

    def __init__(self, expected):
        self.expected = expected
        self.data = bytearray()
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.data += data
        if len(self.data) >= self.expected and not self.done.called:
            self.done.callback(bytes(self.data))


def need(binary):
    path = shutil.which(binary)
    if path is None:
        raise SkipTest("%s is not installed (apt-get install nghttp2-client curl)" % (binary,))
    return path


class LoopbackMixin:
    def gossip(self, **kw):
        packets = []
        waiting = []

        def onPacket(*a):
            packets.append(a)
            while waiting and waiting[0][0] <= len(packets):
                waiting.pop(0)[1].callback(None)
        g = GossipTransport(reactor, "127.0.0.1:0", onPacket, lambda s: s.attach(Echo()), **kw)
        g.packets = packets

        def waitPackets(n):
            d = defer.Deferred()
            waiting.append((n, d))
            return d if len(packets) < n else defer.succeed(None)
        g.waitPackets = waitPackets
        self.addCleanup(g.shutdown)
        # Accepted connections end too (GOAWAY; closed once their streams
        # are): one may still be handling a read's events over reactor turns.
        self.addCleanup(g.h2Factory().shutdown)
        return g

    @defer.inlineCallbacks
    def listen(self, factory):
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        return "127.0.0.1:%d" % (port.getHost().port,)

    def bodyFile(self, data):
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        return path


class ToolTests(LoopbackMixin, TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def curl(self, address, body, *args):
        out, err, code = yield getProcessOutputAndValue(need("curl"), [
            "-s", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary",
            "@" + self.bodyFile(body), *args, "http://%s%s" % (address, URL_PATH)])
        return out.decode()

    @defer.inlineCallbacks
    def test_curl(self):
        """curl: h2c prior knowledge 200/400 in ckit's cases; --http1.1 gets 505."""
        g = self.gossip()
        address = yield self.listen(g.serverFactory())
        ckit = ["-H", "Content-Type: application/x.ckit"]
        h2 = ["--http2-prior-knowledge"]
        self.assertEqual((yield self.curl(address, b"\xcc\x00\x05hello", *h2, *ckit)), "200")
        self.assertEqual((yield self.curl(address, b"\xcc\x00\x05hello", "--http1.1", *ckit)),
                         "505")
        self.assertEqual((yield self.curl(address, b"\xcc\x00\x05hello", *h2)), "400")
        self.assertEqual((yield self.curl(address, b"\x00\x00\x05hello", *h2, *ckit)), "400")
        big = b"B" * 200000
        self.assertEqual((yield self.curl(address, encodeFrame(big), *h2, *ckit)), "200")
        self.assertEqual([p[0] for p in g.packets], [b"hello", big])
        self.assertTrue(g.packets[0][1].startswith("127.0.0.1:"))

    @defer.inlineCallbacks
    def test_curlMultiFrameBody(self):
        """A body of several frames (what our batching sender POSTs): every packet, in order."""
        g = self.gossip()
        address = yield self.listen(g.serverFactory())
        payloads = [b"one", b"", b"three", b"4" * 70000, b"five"]
        body = b"".join(encodeFrame(p) for p in payloads)
        self.assertEqual((yield self.curl(address, body, "--http2-prior-knowledge",
                                          "-H", "Content-Type: application/x.ckit")), "200")
        self.assertEqual([p[0] for p in g.packets], payloads)
        self.assertEqual(len({p[2] for p in g.packets}), 1)  # one request, one timestamp

    @defer.inlineCallbacks
    def test_nghttp(self):
        g = self.gossip()
        address = yield self.listen(g.serverFactory())
        out, err, code = yield getProcessOutputAndValue(need("nghttp"), [
            "-v", "-H", "content-type: application/x.ckit", "-d",
            self.bodyFile(encodeFrame(b"via nghttp")), "http://%s%s" % (address, URL_PATH)])
        self.assertEqual(code, 0, err)
        self.assertIn(b":status: 200", out)
        self.assertEqual([p[0] for p in g.packets], [b"via nghttp"])

    @defer.inlineCallbacks
    def test_h2load(self):
        """1,000 POSTs, 4 connections x 10 concurrent streams: all 2xx, all delivered."""
        g = self.gossip()
        address = yield self.listen(g.serverFactory())
        out, err, code = yield getProcessOutputAndValue(need("h2load"), [
            "-n", "1000", "-c", "4", "-m", "10", "-d", self.bodyFile(encodeFrame(b"load")),
            "-H", "content-type: application/x.ckit", "http://%s%s" % (address, URL_PATH)])
        self.assertEqual(code, 0, err)
        self.assertIn(b"1000 succeeded, 0 failed, 0 errored", out)
        self.assertIn(b"status codes: 1000 2xx", out)
        self.assertEqual(len(g.packets), 1000)


class TransportLoopbackTests(LoopbackMixin, TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_packetsAndStreams(self):
        """writeTo and dialTimeout between two transports over one h2c connection."""
        server, client = self.gossip(), self.gossip()
        address = yield self.listen(server.serverFactory())
        for i in range(200):
            client.writeTo(b"packet %d" % i, address)
        stream = yield client.dialTimeout(address, 5)
        reader = Reader(6)
        stream.attach(reader)
        stream.write(b"abc")
        stream.write(b"def")
        self.assertEqual((yield reader.done), b"abcdef")
        stream.loseConnection()
        yield server.waitPackets(200)
        self.assertEqual([p[0] for p in server.packets], [b"packet %d" % i for i in range(200)])
        self.assertEqual(len({p[1] for p in server.packets}), 1)  # one connection

    @defer.inlineCallbacks
    def test_batchedPackets(self):
        """Packets queued behind a POST in flight ride together; all arrive, in order."""
        server = self.gossip()
        client = self.gossip(maxInFlight=1, maxBatchBytes=4096)
        address = yield self.listen(server.serverFactory())
        for i in range(500):
            client.writeTo(b"packet %03d" % i, address)
        yield server.waitPackets(500)
        self.assertEqual([p[0] for p in server.packets], [b"packet %03d" % i for i in range(500)])
        posts = client.metrics.txRequests._value.get()
        # 13-byte frames, at most 315 per 4 KiB body: at least 3 POSTs, far fewer than 500
        self.assertTrue(3 <= posts < 50, posts)
        self.assertEqual(client.metrics.txFailed._value.get(), 0)

    @defer.inlineCallbacks
    def test_manyConcurrentStreamsLargeFrames(self):
        """80 streams at once, each echoing a 0xCD frame of 256 KiB."""
        server, client = self.gossip(), self.gossip()
        address = yield self.listen(server.serverFactory())
        streams = yield defer.gatherResults([client.dialTimeout(address, 10) for _ in range(80)])
        readers = []
        for i, stream in enumerate(streams):
            reader = Reader(256 * 1024)
            stream.attach(reader)
            stream.write(bytes([i]) * (256 * 1024))
            readers.append(reader.done)
        echoes = yield defer.gatherResults(readers)
        self.assertEqual([e[:1] for e in echoes], [bytes([i]) for i in range(80)])
        for stream in streams:
            stream.loseConnection()

    @defer.inlineCallbacks
    def test_reconnectAfterConnectionLoss(self):
        """The pool dials again after its connection to a peer is gone."""
        server, client = self.gossip(), self.gossip()
        address = yield self.listen(server.serverFactory())
        client.writeTo(b"one", address)
        proto = yield client.pool.connectionFor(address)
        stream = yield client.dialTimeout(address, 5)  # known done: a round trip later
        stream.loseConnection()
        closed = proto.whenClosed()
        proto.transport.loseConnection()
        yield closed
        stream = yield client.dialTimeout(address, 5)
        stream.loseConnection()
        self.assertIsNot((yield client.pool.connectionFor(address)), proto)

    @defer.inlineCallbacks
    def test_tlsALPN(self):
        """Over TLS the server offers h2 by ALPN and the client insists on it."""
        try:
            from raftmux.testing.tlsca import CertificateAuthority
        except ImportError:
            raise SkipTest("raftmux.testing.tlsca is not available")
        ca = CertificateAuthority()
        server = self.gossip()
        client = self.gossip(contextFactory=ca.clientOptions("127.0.0.1",
                                                             acceptableProtocols=[b"h2"]))
        address = yield self.listen(TLSMemoryBIOFactory(ca.serverOptions(), False,
                                                        server.serverFactory()))
        stream = yield client.dialTimeout(address, 5)
        self.assertEqual(stream.getPeer().port, int(address.split(":")[1]))
        reader = Reader(5)
        stream.attach(reader)
        stream.write(b"tls!!")
        self.assertEqual((yield reader.done), b"tls!!")
        stream.loseConnection()
        # curl over TLS: ALPN h2 -> 200; --http1.1 over TLS -> 505
        if shutil.which("curl"):
            caFile = self.bodyFile(ca.pem)
            body = self.bodyFile(encodeFrame(b"tls curl"))
            for args, want in (([], b"200"), (["--http1.1"], b"505")):
                out, err, code = yield getProcessOutputAndValue("curl", [
                    "-s", "-o", os.devnull, "-w", "%{http_code}", "--cacert", caFile,
                    "-H", "Content-Type: application/x.ckit", "--data-binary", "@" + body,
                    *args, "https://%s%s" % (address, URL_PATH)])
                self.assertEqual(out, want, err)

    @defer.inlineCallbacks
    def test_tlsWithoutH2Refused(self):
        """A TLS peer that does not negotiate h2 is refused, not spoken to."""
        try:
            from raftmux.testing.tlsca import CertificateAuthority
        except ImportError:
            raise SkipTest("raftmux.testing.tlsca is not available")
        from raftmux.gossip import NotHTTP2
        ca = CertificateAuthority()
        site = Site(Resource())
        site.acceptableProtocols = lambda: [b"http/1.1"]
        address = yield self.listen(TLSMemoryBIOFactory(ca.serverOptions(), False, site))
        client = self.gossip(contextFactory=optionsForClientTLS(
            "127.0.0.1", trustRoot=ca.certificate, acceptableProtocols=[b"h2"]))
        yield self.assertFailure(client.dialTimeout(address, 5), NotHTTP2, Exception)


class Hello(Resource):
    isLeaf = True

    def render(self, request):
        return b"site:" + request.clientproto


class SniffComposeTests(LoopbackMixin, TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_sniffer(self):
        """
        Issue point 5: on one port, h2c carrying content-type application/x.ckit
        goes to the gossip server, other h2c and HTTP/1.1 to a Site.
        """
        try:
            from raftmux.sniff import SniffingFactory, http1, http2, http2HeaderField
        except ImportError:
            raise SkipTest("raftmux.sniff (http2HeaderField) is not importable yet")
        server, client = self.gossip(), self.gossip()
        site = Site(Hello())
        factory = SniffingFactory([
            (http2HeaderField("content-type", "application/x.ckit"), server.serverFactory()),
            (http2(), site),
            (http1(), site),
        ], timeout=5)
        address = yield self.listen(factory)
        client.writeTo(b"through the sniffer", address)
        stream = yield client.dialTimeout(address, 5)
        reader = Reader(4)
        stream.attach(reader)
        stream.write(b"ping")
        self.assertEqual((yield reader.done), b"ping")
        stream.loseConnection()
        yield server.waitPackets(1)
        self.assertEqual([p[0] for p in server.packets], [b"through the sniffer"])
        if shutil.which("curl"):
            for args, want in ((["--http2-prior-knowledge"], b"site:HTTP/2"),
                               (["--http1.1"], b"site:HTTP/1.1")):
                out, err, code = yield getProcessOutputAndValue("curl", [
                    "-s", *args, "http://%s/other" % (address,)])
                self.assertEqual(out, want, err)
