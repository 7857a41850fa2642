# -*- test-case-name: raftmux.test.test_h2_agent -*-
"""
``H2Agent`` on real loopback sockets against our own HTTP/2 server (the
shell), Twisted's own HTTP/2 over TLS, and a TLS Site offering only
HTTP/1.1 (the fallback); through treq unchanged.  Bodies both ways with
back-pressure, concurrency on one connection and a second connection at
the stream limit, GOAWAY and REFUSED_STREAM retries, timeouts, and
certificate checks.  External servers (nghttpd, Go) are in test_h2_interop.
"""

import gc
import io
import json

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import TestCase
from twisted.web.client import (
    BrowserLikePolicyForHTTPS,
    FileBodyProducer,
    ResponseDone,
    readBody,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from raftmux.h2 import H2Config, NotReplayable, Origin
from raftmux.h2.agent import H2Agent, ResponseTimeout
from raftmux.test.h2helpers import TestServer
from raftmux.testing.tlsca import CertificateAuthority


class Collect(Protocol):
    """A response body protocol that can pause its transport."""

    def __init__(self, pauseAt=None):
        self.data = bytearray()
        self.done = defer.Deferred()
        self.pauseAt = pauseAt
        self.paused = defer.Deferred()

    def dataReceived(self, data):
        self.data += data
        if self.pauseAt is not None and len(self.data) >= self.pauseAt:
            self.pauseAt = None
            self.transport.pauseProducing()
            self.paused.callback(len(self.data))

    def connectionLost(self, reason):
        self.reason = reason
        self.done.callback(bytes(self.data))


class CountingProducer(FileBodyProducer):
    """A FileBodyProducer that counts the pauses flow control makes."""

    pauses = 0

    def pauseProducing(self):
        self.pauses += 1
        FileBodyProducer.pauseProducing(self)


@implementer(IPolicyForHTTPS)
class TrustCA:
    """Certificate checks against our test CA (service_identity checks the name)."""

    def __init__(self, ca):
        self.ca = ca

    def creatorForNetloc(self, hostname, port):
        return optionsForClientTLS(hostname.decode("ascii"), trustRoot=self.ca.certificate)


class AgentMixin:
    timeout = 60

    @defer.inlineCallbacks
    def serve(self, factory):
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def agent(self, **kw):
        agent = H2Agent(reactor, **kw)
        self.addCleanup(agent.closeCachedConnections)
        return agent

    @defer.inlineCallbacks
    def ours(self, config=None):
        server = TestServer(config)
        self.addCleanup(server.factory.shutdown)
        port = yield self.serve(server.factory)
        server.url = "http://127.0.0.1:%d" % (port,)
        return server


class H2cTests(AgentMixin, TestCase):
    @defer.inlineCallbacks
    def test_getAndPost(self):
        server = yield self.ours()
        agent = self.agent()
        response = yield agent.request(b"GET", server.url.encode() + b"/hello")
        self.assertEqual((response.version, response.code, response.phrase),
                         ((b"HTTP", 2, 0), 200, b"OK"))
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/plain"])
        self.assertEqual((yield readBody(response)), b"hello from raftmux")
        response = yield agent.request(b"POST", server.url.encode() + b"/sink", Headers(),
                                       FileBodyProducer(io.BytesIO(b"z" * 100000)))
        self.assertEqual((yield readBody(response)), b"100000")

    @defer.inlineCallbacks
    def test_treqUnchanged(self):
        """treq's HTTPClient over H2Agent: GET, POST of bytes and JSON, streaming, headers."""
        from treq.client import HTTPClient

        server = yield self.ours()
        client = HTTPClient(self.agent())
        response = yield client.get(server.url + "/hello")
        self.assertEqual((yield response.text()), "hello from raftmux")
        response = yield client.post(server.url + "/sink", data=b"y" * 70000)
        self.assertEqual((yield response.content()), b"70000")
        response = yield client.post(server.url + "/headers", json={"a": 1},
                                     headers={"X-Custom": "yes"})
        text = yield response.text()
        self.assertIn("x-custom: yes", text)
        self.assertIn("content-type: application/json", text)
        self.assertIn(":authority: 127.0.0.1:", text)
        response = yield client.post(server.url + "/echo",
                                     data=io.BytesIO(json.dumps([1, 2, 3]).encode()))
        self.assertEqual((yield response.json()), [1, 2, 3])
        chunks = []
        response = yield client.get(server.url + "/big?n=300000")
        yield response.collect(chunks.append)
        self.assertEqual(sum(map(len, chunks)), 300000)

    @defer.inlineCallbacks
    def test_finishedExchangesLeaveNoCycles(self):
        """
        A finished request is freed by reference counting: nothing of it is
        left for the cyclic collector, which took a tenth of a busy client's
        CPU while every exchange, stream, response and Deferred referred to
        each other.
        """
        server = yield self.ours()
        agent = self.agent()
        url = server.url.encode() + b"/hello"
        response = yield agent.request(b"GET", url)  # connect first
        yield readBody(response)
        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)
        gc.set_debug(gc.DEBUG_SAVEALL)
        self.addCleanup(gc.set_debug, 0)
        for _ in range(5):
            response = yield agent.request(b"GET", url)
            self.assertEqual((yield readBody(response)), b"hello from raftmux")
        del response
        gc.collect()
        # (The server in this process keeps its own cycles: agent objects only.)
        left = [o for o in gc.garbage if type(o).__module__ == "raftmux.h2.agent"]
        del gc.garbage[:]
        self.assertEqual(left, [])

    @defer.inlineCallbacks
    def test_manyRequestsOneConnection(self):
        server = yield self.ours()
        agent = self.agent()
        url = server.url.encode() + b"/hello"

        @defer.inlineCallbacks
        def get():
            response = yield agent.request(b"GET", url)
            return (yield readBody(response))

        bodies = yield defer.gatherResults([get() for _ in range(64)])
        self.assertEqual(set(bodies), {b"hello from raftmux"})
        origin = Origin(b"http", b"127.0.0.1", int(server.url.rsplit(":", 1)[1]))
        self.assertEqual(len(agent.pool.connections(origin)), 1)

    @defer.inlineCallbacks
    def test_secondConnectionAtTheStreamLimit(self):
        server = yield self.ours(H2Config(maxConcurrentStreams=3))
        agent = self.agent()
        yield readBody((yield agent.request(b"GET", server.url.encode() + b"/hello")))
        holds = [agent.request(b"GET", server.url.encode() + b"/hold") for _ in range(5)]
        origin = Origin(b"http", b"127.0.0.1", int(server.url.rsplit(":", 1)[1]))
        from raftmux.test.h2helpers import waitFor
        yield waitFor(reactor, lambda: len(server.held) == 5)
        self.assertEqual(len(agent.pool.connections(origin)), 2)
        for held in server.held:
            held.transport.respond(204)
        responses = yield defer.gatherResults(holds)
        self.assertEqual([r.code for r in responses], [204] * 5)

    @defer.inlineCallbacks
    def test_uploadUnderFlowControl(self):
        """A 16 MiB upload: the producer is paused by flow control, and everything arrives."""
        server = yield self.ours(H2Config(initialWindowSize=65535, connectionWindowSize=65535))
        agent = self.agent()
        producer = CountingProducer(io.BytesIO(b"u" * (16 * 1024 * 1024)), readSize=65536)
        response = yield agent.request(b"POST", server.url.encode() + b"/sink", None, producer)
        self.assertEqual((yield readBody(response)), b"%d" % (16 * 1024 * 1024,))
        self.assertGreater(producer.pauses, 0)

    @defer.inlineCallbacks
    def test_pausedConsumerStopsTheServer(self):
        """
        The response body's protocol pauses: the server's producer is paused
        by flow control, and what it wrote stays within the windows and its
        send queue; resuming delivers the rest.
        """
        window = 65535
        server = yield self.ours()
        agent = self.agent(config=H2Config(initialWindowSize=window,
                                           connectionWindowSize=window))
        total = 8 * 1024 * 1024
        response = yield agent.request(b"GET", server.url.encode() + b"/big?n=%d" % (total,))
        body = Collect(pauseAt=1)
        response.deliverBody(body)
        yield body.paused
        from raftmux.test.h2helpers import waitFor
        yield waitFor(reactor, lambda: server.bigPauses > 0)
        written = server.written
        self.assertLess(written, 2 * window + 256 * 1024 + 16384)
        body.transport.resumeProducing()
        data = yield body.done
        self.assertEqual(len(data), total)
        body.reason.trap(ResponseDone)

    @defer.inlineCallbacks
    def test_fullDuplexStreamingBodies(self):
        """An echo while the upload is still running: both bodies stream at once."""
        server = yield self.ours()
        agent = self.agent()
        from twisted.web.iweb import UNKNOWN_LENGTH

        @implementer(__import__("twisted.web.iweb", fromlist=["IBodyProducer"]).IBodyProducer)
        class Slow:
            length = UNKNOWN_LENGTH

            def startProducing(self, consumer):
                self.consumer = consumer
                self.finished = defer.Deferred()
                consumer.write(b"first ")
                return self.finished

            def pauseProducing(self):
                pass

            def resumeProducing(self):
                pass

            def stopProducing(self):
                pass

        producer = Slow()
        response = yield agent.request(b"POST", server.url.encode() + b"/echo", None, producer)
        body = Collect()
        response.deliverBody(body)
        from raftmux.test.h2helpers import waitFor
        yield waitFor(reactor, lambda: body.data == b"first ")
        producer.consumer.write(b"second")
        producer.finished.callback(None)
        self.assertEqual((yield body.done), b"first second")

    @defer.inlineCallbacks
    def test_trailers(self):
        server = yield self.ours()
        response = yield self.agent().request(b"GET", server.url.encode() + b"/trailers")
        self.assertEqual((yield readBody(response)), b"body before trailers")
        self.assertEqual(response.trailers.getRawHeaders(b"x-trailer"), [b"yes"])

    @defer.inlineCallbacks
    def test_goAwayRetry(self):
        """A request the server's GOAWAY says it never processed is sent again, body and all."""
        server = yield self.ours()
        agent = self.agent()
        response = yield agent.request(b"POST", server.url.encode() + b"/goaway", None,
                                       FileBodyProducer(io.BytesIO(b"r" * 5000)))
        self.assertEqual((yield readBody(response)), b"processed 5000")
        self.assertEqual((len(server.goneAway), server.requests), (1, 2))

    @defer.inlineCallbacks
    def test_goAwayBodyTooLargeToReplay(self):
        server = yield self.ours()
        agent = self.agent(maxReplayBytes=1000)
        d = agent.request(b"POST", server.url.encode() + b"/goaway", None,
                          FileBodyProducer(io.BytesIO(b"r" * 5000)))
        failure = yield self.assertFailure(d, NotReplayable)
        self.assertTrue(failure.retryable)

    @defer.inlineCallbacks
    def test_refusedStreamRetry(self):
        server = yield self.ours()
        response = yield self.agent().request(b"GET", server.url.encode() + b"/refuse")
        self.assertEqual((yield readBody(response)), b"accepted")

    @defer.inlineCallbacks
    def test_responseTimeout(self):
        """No answer within responseTimeout: ResponseTimeout, and the stream is reset."""
        server = yield self.ours()
        agent = self.agent(responseTimeout=0.2)
        yield self.assertFailure(agent.request(b"GET", server.url.encode() + b"/hold"),
                                 ResponseTimeout)
        from raftmux.test.h2helpers import waitFor
        yield waitFor(reactor, lambda: server.lost)
        response = yield agent.request(b"GET", server.url.encode() + b"/hello")
        self.assertEqual(response.code, 200)
        yield readBody(response)

    @defer.inlineCallbacks
    def test_cancel(self):
        server = yield self.ours()
        d = self.agent().request(b"GET", server.url.encode() + b"/hold")
        from raftmux.test.h2helpers import waitFor
        yield waitFor(reactor, lambda: server.held)
        d.cancel()
        yield self.assertFailure(d, defer.CancelledError)
        yield waitFor(reactor, lambda: server.lost)


class SilentTLS(Protocol):
    """Accepts a connection and never answers (a TLS handshake that never ends)."""


class TLSTests(AgentMixin, TestCase):
    def setUp(self):
        self.ca = CertificateAuthority()

    @defer.inlineCallbacks
    def tlsServer(self, factory, ca=None):
        ca = ca or self.ca
        port = yield self.serve(TLSMemoryBIOFactory(ca.serverOptions(), False, factory))
        return "https://127.0.0.1:%d" % (port,)

    @defer.inlineCallbacks
    def test_oursOverTLS(self):
        server = TestServer()
        self.addCleanup(server.factory.shutdown)
        url = yield self.tlsServer(server.factory)
        agent = self.agent(contextFactory=TrustCA(self.ca))
        response = yield agent.request(b"GET", url.encode() + b"/hello")
        self.assertEqual(response.version, (b"HTTP", 2, 0))
        self.assertEqual((yield readBody(response)), b"hello from raftmux")

    @defer.inlineCallbacks
    def test_twistedsOwnHTTP2(self):
        """A twisted.web Site behind TLS with ALPN h2: Twisted's H2Connection answers."""

        class Who(Resource):
            isLeaf = True

            def render(self, request):
                return b"twisted " + request.clientproto + b" " + request.content.read()

        url = yield self.tlsServer(Site(Who()))
        agent = self.agent(contextFactory=TrustCA(self.ca))
        responses = yield defer.gatherResults([
            agent.request(b"POST", url.encode() + b"/", None,
                          FileBodyProducer(io.BytesIO(b"%d" % (i,)))) for i in range(20)])
        bodies = yield defer.gatherResults([readBody(r) for r in responses])
        self.assertEqual(bodies, [b"twisted HTTP/2 %d" % (i,) for i in range(20)])
        self.assertEqual({r.version for r in responses}, {(b"HTTP", 2, 0)})

    @defer.inlineCallbacks
    def test_fallbackToHTTP11(self):
        """A TLS server offering only http/1.1: Twisted's Agent serves it, remembered per origin."""

        class Who(Resource):
            isLeaf = True

            def render(self, request):
                return request.clientproto

        site = Site(Who())
        site.acceptableProtocols = lambda: [b"http/1.1"]
        url = yield self.tlsServer(site)
        agent = self.agent(contextFactory=TrustCA(self.ca))
        for _ in range(2):
            response = yield agent.request(b"GET", url.encode() + b"/")
            self.assertEqual(response.version, (b"HTTP", 1, 1))
            self.assertEqual((yield readBody(response)), b"HTTP/1.1")
        origin = Origin(b"https", b"127.0.0.1", int(url.rsplit(":", 1)[1]))
        self.assertEqual(agent.protocolFor(origin), b"http/1.1")

    @defer.inlineCallbacks
    def test_badCertificateRefused(self):
        """A certificate from a CA we do not trust: the request fails, nothing is sent."""
        server = TestServer()
        self.addCleanup(server.factory.shutdown)
        url = yield self.tlsServer(server.factory, ca=CertificateAuthority("another CA"))
        agent = self.agent(contextFactory=TrustCA(self.ca))
        failure = yield self.assertFailure(agent.request(b"GET", url.encode() + b"/hello"),
                                           Exception)
        self.assertIn("certificate verify failed", str(failure))
        self.assertEqual(server.requests, 0)

    @defer.inlineCallbacks
    def test_wrongNameRefused(self):
        """service_identity: a certificate for another name is refused."""
        server = TestServer()
        self.addCleanup(server.factory.shutdown)
        port = yield self.serve(TLSMemoryBIOFactory(
            self.ca.serverOptions(self.ca.issue("elsewhere.test")), False, server.factory))
        agent = self.agent(contextFactory=TrustCA(self.ca))
        failure = yield self.assertFailure(
            agent.request(b"GET", b"https://127.0.0.1:%d/hello" % (port,)), Exception)
        self.assertIn("127.0.0.1", str(failure))
        self.assertEqual(server.requests, 0)

    @defer.inlineCallbacks
    def test_defaultPolicyChecksCertificates(self):
        """Without a policy, the platform's roots: our test CA is not among them."""
        server = TestServer()
        self.addCleanup(server.factory.shutdown)
        url = yield self.tlsServer(server.factory)
        agent = self.agent()
        self.assertIsInstance(agent.pool.tlsPolicy, BrowserLikePolicyForHTTPS)
        yield self.assertFailure(agent.request(b"GET", url.encode() + b"/hello"), Exception)

    @defer.inlineCallbacks
    def test_connectTimeout(self):
        """A TLS handshake that never ends fails after connectTimeout."""
        from twisted.internet.error import TimeoutError

        port = yield self.serve(Factory.forProtocol(SilentTLS))
        agent = self.agent(connectTimeout=0.3)
        yield self.assertFailure(agent.request(b"GET", b"https://127.0.0.1:%d/" % (port,)),
                                 TimeoutError)


class ExampleTests(AgentMixin, TestCase):
    """docs/examples/h2agent.py, the HTTP/2 chapter's example, runs as written."""

    def example(self, *args):
        import os
        import sys

        from twisted.internet.utils import getProcessOutputAndValue

        import raftmux
        root = os.path.dirname(os.path.dirname(os.path.abspath(raftmux.__file__)))
        path = os.path.join(root, "docs", "examples", "h2agent.py")
        if not os.path.exists(path):
            from twisted.trial.unittest import SkipTest
            raise SkipTest("docs/examples is not shipped with this raftmux")
        env = dict(os.environ, PYTHONPATH=root)
        return getProcessOutputAndValue(sys.executable, [path, *args], env=env)

    @defer.inlineCallbacks
    def test_selfServed(self):
        out, err, code = yield self.example()
        self.assertEqual(code, 0, err)
        lines = out.decode().splitlines()
        self.assertEqual(len(lines), 10, out)
        self.assertTrue(all(line.startswith("200 HTTP/2.0") for line in lines), out)

    @defer.inlineCallbacks
    def test_againstAServer(self):
        server = yield self.ours()
        out, err, code = yield self.example(server.url + "/hello", server.url + "/status/404")
        self.assertEqual(code, 0, err)
        self.assertIn("200 HTTP/2.0     18 bytes %s/hello" % (server.url,), out.decode())
        self.assertIn("404 HTTP/2.0      0 bytes", out.decode())
