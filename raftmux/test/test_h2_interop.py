# -*- test-case-name: raftmux.test.test_h2_interop -*-
"""
``H2Agent`` against real HTTP/2 servers on loopback: nghttpd (Debian
``nghttp2-server``) and a Go ``net/http`` server with ``x/net/http2``
(``raftmux/test/go/h2server``, built offline in GOPATH mode), each over
h2c with prior knowledge and over TLS with ALPN.  Each test skips, saying
why, when its server binary or toolchain is missing.
"""

import io
import os
import subprocess

from twisted.internet import defer, reactor
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import FileBodyProducer, ResponseDone, readBody

from raftmux.h2 import H2Config, Origin
from raftmux.h2.agent import H2Agent
from raftmux.test.h2helpers import listeningPort, waitFor
from raftmux.test.test_h2_agent import Collect, TrustCA
from raftmux.testing.gopeer import buildGoProgram
from raftmux.testing.tlsca import CertificateAuthority, writeFiles

NGHTTPD = "/usr/sbin/nghttpd"
BIG = 1024 * 1024


class ServerMixin:
    timeout = 120

    def start(self, argv, portFromStdout=False):
        """Run a server; returns its port once it listens (stdout line, or /proc)."""
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)

        def stop():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        self.addCleanup(stop)
        if portFromStdout:
            line = proc.stdout.readline().decode().split()
            if len(line) != 2 or line[0] != "listening":
                raise AssertionError("server did not start: %r %r"
                                     % (line, proc.stderr.read(2000)))
            return defer.succeed(int(line[1]))

        def port():
            if proc.poll() is not None:
                raise AssertionError("server exited: %r" % (proc.stderr.read(2000),))
            return listeningPort(proc.pid)
        return waitFor(reactor, port)

    def agent(self, **kw):
        agent = H2Agent(reactor, **kw)
        self.addCleanup(agent.closeCachedConnections)
        return agent

    def certificate(self):
        ca = CertificateAuthority()
        directory = self.mktemp()
        os.makedirs(directory)
        certFile, keyFile = writeFiles(directory, "server",
                                       ca.issue("localhost", ipAddresses=["127.0.0.1"]))
        return ca, certFile, keyFile

    @defer.inlineCallbacks
    def heldStreams(self, agent, url, count):
        """``count`` GETs whose large bodies are not read yet (their streams stay open)."""
        responses = yield defer.gatherResults([agent.request(b"GET", url)
                                               for _ in range(count)])
        return responses


class NghttpdTests(ServerMixin, TestCase):
    def setUp(self):
        if not os.path.exists(NGHTTPD):
            raise SkipTest("nghttpd is not installed (Debian: apt-get install nghttp2-server)")
        self.docs = self.mktemp()
        os.makedirs(self.docs)
        with open(os.path.join(self.docs, "small.txt"), "wb") as f:
            f.write(b"served by nghttpd")
        with open(os.path.join(self.docs, "big.bin"), "wb") as f:
            f.write(bytes(range(256)) * (BIG // 256))

    @defer.inlineCallbacks
    def nghttpd(self, *options, tls=False):
        argv = [NGHTTPD, "-a", "127.0.0.1", "-d", self.docs, *options]
        if tls:
            ca, certFile, keyFile = self.certificate()
            port = yield self.start(argv + ["0", keyFile, certFile])
            return ca, "https://127.0.0.1:%d" % (port,)
        port = yield self.start(argv + ["--no-tls", "0"])
        return None, "http://127.0.0.1:%d" % (port,)

    @defer.inlineCallbacks
    def test_h2cConcurrentOnOneConnection(self):
        _, url = yield self.nghttpd()
        agent = self.agent()

        @defer.inlineCallbacks
        def get():
            response = yield agent.request(b"GET", url.encode() + b"/small.txt")
            self.assertEqual(response.version, (b"HTTP", 2, 0))
            return (yield readBody(response))

        bodies = yield defer.gatherResults([get() for _ in range(64)])
        self.assertEqual(set(bodies), {b"served by nghttpd"})
        origin = Origin(b"http", b"127.0.0.1", int(url.rsplit(":", 1)[1]))
        self.assertEqual(len(agent.pool.connections(origin)), 1)

    @defer.inlineCallbacks
    def test_secondConnectionAtItsStreamLimit(self):
        """nghttpd -m 2: five unread 1 MiB answers hold five streams, on three connections."""
        _, url = yield self.nghttpd("-m", "2")
        agent = self.agent()
        yield readBody((yield agent.request(b"GET", url.encode() + b"/small.txt")))
        responses = yield self.heldStreams(agent, url.encode() + b"/big.bin", 5)
        origin = Origin(b"http", b"127.0.0.1", int(url.rsplit(":", 1)[1]))
        self.assertEqual(len(agent.pool.connections(origin)), 3)
        bodies = yield defer.gatherResults([readBody(r) for r in responses])
        self.assertEqual({len(b) for b in bodies}, {BIG})

    @defer.inlineCallbacks
    def test_uploadEchoed(self):
        """--echo-upload: a 4 MiB upload under flow control comes back whole."""
        _, url = yield self.nghttpd("--echo-upload")
        body = os.urandom(4 * 1024 * 1024)
        response = yield self.agent().request(b"POST", url.encode() + b"/small.txt", None,
                                              FileBodyProducer(io.BytesIO(body)))
        self.assertEqual((yield readBody(response)), body)

    @defer.inlineCallbacks
    def test_pausedBodyResumes(self):
        """A body paused after its first bytes is held by flow control, then read whole."""
        _, url = yield self.nghttpd()
        agent = self.agent(config=H2Config(initialWindowSize=65535,
                                           connectionWindowSize=65535))
        response = yield agent.request(b"GET", url.encode() + b"/big.bin")
        body = Collect(pauseAt=1)
        response.deliverBody(body)
        yield body.paused
        body.transport.resumeProducing()
        self.assertEqual(len((yield body.done)), BIG)
        body.reason.trap(ResponseDone)

    @defer.inlineCallbacks
    def test_tls(self):
        ca, url = yield self.nghttpd(tls=True)
        response = yield self.agent(contextFactory=TrustCA(ca)).request(
            b"GET", url.encode() + b"/small.txt")
        self.assertEqual(response.version, (b"HTTP", 2, 0))
        self.assertEqual((yield readBody(response)), b"served by nghttpd")


class GoServerTests(ServerMixin, TestCase):
    def setUp(self):
        self.binary = buildGoProgram("h2server", "test/go/h2server")

    @defer.inlineCallbacks
    def go(self, *options, tls=False):
        argv = [self.binary, *options]
        if tls:
            ca, certFile, keyFile = self.certificate()
            port = yield self.start(argv + ["-cert", certFile, "-key", keyFile],
                                    portFromStdout=True)
            return ca, "https://127.0.0.1:%d" % (port,)
        port = yield self.start(argv, portFromStdout=True)
        return None, "http://127.0.0.1:%d" % (port,)

    @defer.inlineCallbacks
    def test_h2cHeaders(self):
        _, url = yield self.go()
        from twisted.web.http_headers import Headers

        response = yield self.agent().request(b"GET", url.encode() + b"/headers",
                                              Headers({b"X-Custom": [b"yes"]}))
        text = (yield readBody(response)).decode()
        self.assertTrue(text.startswith("GET HTTP/2.0 127.0.0.1:"), text)
        self.assertIn("x-custom: yes", text)

    @defer.inlineCallbacks
    def test_fullDuplexEcho(self):
        """/echo streams back as it reads: 8 MiB both ways at once, on h2c and TLS."""
        for tls in (False, True):
            ca, url = yield self.go(tls=tls)
            agent = self.agent(contextFactory=TrustCA(ca) if ca else None)
            body = os.urandom(8 * 1024 * 1024)
            response = yield agent.request(b"POST", url.encode() + b"/echo", None,
                                           FileBodyProducer(io.BytesIO(body)))
            self.assertEqual(response.version, (b"HTTP", 2, 0))
            self.assertEqual((yield readBody(response)), body)

    @defer.inlineCallbacks
    def test_pausedConsumerStopsTheGoHandler(self):
        """
        The body protocol pauses: Go's handler blocks in Write once our
        windows are full, so what it wrote stays near the windows.
        """
        _, url = yield self.go()
        window = 65535
        agent = self.agent(config=H2Config(initialWindowSize=window,
                                           connectionWindowSize=window))
        total = 64 * 1024 * 1024
        response = yield agent.request(b"GET", url.encode() + b"/big?n=%d" % (total,))
        body = Collect(pauseAt=1)
        response.deliverBody(body)
        yield body.paused
        other = self.agent()
        written = []
        for _ in range(3):
            # the count stops moving once the handler is blocked
            count = yield other.request(b"GET", url.encode() + b"/written")
            written.append(int((yield readBody(count))))
        self.assertLess(written[-1], 4 * 1024 * 1024)
        body.transport.resumeProducing()
        self.assertEqual(len((yield body.done)), total)

    @defer.inlineCallbacks
    def test_trailers(self):
        _, url = yield self.go()
        response = yield self.agent().request(b"GET", url.encode() + b"/trailers")
        self.assertEqual((yield readBody(response)), b"body before trailers")
        self.assertEqual(response.trailers.getRawHeaders(b"x-trailer-one"), [b"1"])
        self.assertEqual(response.trailers.getRawHeaders(b"x-trailer-two"), [b"2"])

    @defer.inlineCallbacks
    def test_secondConnectionAtItsStreamLimit(self):
        """-maxstreams 2 over TLS: five held requests need three connections; cancelled, they end."""
        ca, url = yield self.go("-maxstreams", "2", tls=True)
        agent = self.agent(contextFactory=TrustCA(ca))
        yield readBody((yield agent.request(b"GET", url.encode() + b"/hello")))
        holds = [agent.request(b"GET", url.encode() + b"/hold") for _ in range(5)]
        origin = Origin(b"https", b"127.0.0.1", int(url.rsplit(":", 1)[1]))
        yield waitFor(reactor, lambda: len(agent.pool.connections(origin)) == 3)
        for d in holds:
            d.cancel()
        for d in holds:
            yield self.assertFailure(d, defer.CancelledError)
        response = yield agent.request(b"GET", url.encode() + b"/hello")
        self.assertEqual((yield readBody(response)), b"hello from go")

    @defer.inlineCallbacks
    def test_statusAndEmptyBodies(self):
        _, url = yield self.go()
        agent = self.agent()
        for code in (204, 404, 503):
            response = yield agent.request(b"GET", url.encode() + b"/status/%d" % (code,))
            self.assertEqual((response.code, (yield readBody(response))), (code, b""))
        response = yield agent.request(b"HEAD", url.encode() + b"/hello")
        self.assertEqual((response.code, response.length, (yield readBody(response))),
                         (200, 0, b""))
