# -*- test-case-name: raftmux.test.test_grpc_interop -*-
"""
raftmux's gRPC server with real clients, on one sniffed loopback port that
also serves HTTP/1.1, h2c to a twisted.web Site and TLS, as etcd serves
gRPC and HTTP with cmux:

* Python ``grpcio`` (C core; it waits for the server's SETTINGS): all four
  kinds of rpc, deadlines, cancellation reaching the handler, statuses,
  metadata, limits, compression refused, and TLS with ALPN ``h2``;
* a grpc-go 1.33 client (Debian's ``golang-google-grpc-dev``, built in
  GOPATH mode): the health service and etcd's KV and Watch, h2c and TLS;
* ``etcdctl`` 3.4 (grpc-go 1.26) against etcd's API on the fake node;
* ``curl --http2-prior-knowledge``: a trailers-only error.

grpcio is blocking, so its calls run in the reactor's thread pool while the
reactor serves.  Each peer skips its tests when it is absent.
"""

import json
import os
import shutil
import threading

from twisted.internet import defer, reactor, threads
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.server import Site

from raftmux.etcd.api import EtcdAPI
from raftmux.etcd.testing import FakeEtcdNode
from raftmux.grpc import GRPCServer
from raftmux.grpc.etcd import etcdServices
from raftmux.grpcpb import health_pb2
from raftmux.sniff import SniffingFactory, http1, http2, http2HeaderField, tls
from raftmux.test.grpcecho import EchoServicer, echoService, grpctest_pb2
from raftmux.test.test_sniff import Hello
from raftmux.test.test_sniff_loopback import serverSideClosed
from raftmux.testing.tlsca import CertificateAuthority

try:
    import grpc
except ImportError:
    grpc = None

HOST = "127.0.0.1"
ECHO = "/raftmux.test.Echo/"
Request = grpctest_pb2.EchoRequest
Reply = grpctest_pb2.EchoReply
MAX_MESSAGE = 64 * 1024


def needBinary(name):
    path = shutil.which(name)
    if path is None:
        raise SkipTest("%s is not installed" % (name,))
    return path


def grpcMatcher():
    """etcd's cmux rule for gRPC, greeting first: grpc-go and grpcio wait for SETTINGS."""
    return http2HeaderField(b"content-type", b"application/grpc", valuePrefix=True,
                            sendSettings=True)


class OnePort(TestCase):
    """gRPC, HTTP/1.1, h2c to a Site and TLS on one sniffed port."""

    def setUp(self):
        self.ca = CertificateAuthority()
        self.caFile = self.mktemp()
        with open(self.caFile, "wb") as f:
            f.write(self.ca.pem)
        self.servicer = EchoServicer()
        self.node = FakeEtcdNode(reactor)
        self.api = EtcdAPI(self.node, reactor)
        self.api.startService()
        self.addCleanup(self.api.stopService)
        self.server = GRPCServer([echoService(self.servicer)] + etcdServices(self.api),
                                 maxReceiveMessageSize=MAX_MESSAGE)
        self.grpcFactory = self.server.serverFactory()
        site = Site(Hello())
        # Inside TLS, ALPN decides: h2 is gRPC (as etcd's TLS port switches
        # on content-type inside one handler), http/1.1 the Site.
        inner = SniffingFactory([(grpcMatcher(), self.grpcFactory), (http2(), site),
                                 (http1(), site)],
                                alpn={b"h2": self.grpcFactory, b"http/1.1": site},
                                name="tls", timeout=5)
        self.factory = SniffingFactory([
            (grpcMatcher(), self.grpcFactory),
            (http2(), site),
            (tls(), TLSMemoryBIOFactory(self.ca.serverOptions(), False, inner)),
            (http1(), site),
        ], timeout=5)
        return self._listen()

    @defer.inlineCallbacks
    def _listen(self):
        port = yield TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(self.factory)
        self.port = port.getHost().port
        self.target = "%s:%d" % (HOST, self.port)
        self.addCleanup(serverSideClosed, self.port)
        self.addCleanup(port.stopListening)
        self.addCleanup(self.grpcFactory.shutdown)

    def inThread(self, f, *args):
        return threads.deferToThread(f, *args)


class GRPCIOTests(OnePort):
    """Python grpcio (C core) as the client."""

    def setUp(self):
        if grpc is None:
            raise SkipTest("grpcio is not installed (pip install grpcio)")
        return OnePort.setUp(self)

    def channel(self, secure=False, **options):
        opts = [("grpc.enable_retries", 0)] + list(options.items())
        if secure:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.ca.pem)
            opts.append(("grpc.ssl_target_name_override", "localhost"))
            return grpc.secure_channel(self.target, credentials, options=opts)
        return grpc.insecure_channel(self.target, options=opts)

    @staticmethod
    def methods(channel):
        kw = dict(request_serializer=Request.SerializeToString,
                  response_deserializer=Reply.FromString)
        return (channel.unary_unary(ECHO + "Unary", **kw),
                channel.unary_stream(ECHO + "ServerStream", **kw),
                channel.stream_unary(ECHO + "ClientStream", **kw),
                channel.stream_stream(ECHO + "Bidi", **kw))

    @defer.inlineCallbacks
    def test_allFourKinds(self):
        def calls(secure):
            with self.channel(secure) as channel:
                unary, serverStream, clientStream, bidi = self.methods(channel)
                out = {"unary": unary(Request(text="u", payload=b"\x00\x01"), timeout=10)}
                out["serverStream"] = [r.index for r in serverStream(Request(count=100),
                                                                     timeout=10)]
                out["clientStream"] = clientStream(
                    iter([Request(text=str(i), payload=b"p" * 1000) for i in range(50)]),
                    timeout=10)
                out["bidi"] = [r.text for r in bidi(
                    iter([Request(text=str(i)) for i in range(20)]), timeout=10)]
                check = channel.unary_unary(
                    "/grpc.health.v1.Health/Check",
                    request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                    response_deserializer=health_pb2.HealthCheckResponse.FromString)
                out["health"] = check(health_pb2.HealthCheckRequest(), timeout=10).status
                return out
        for secure in (False, True):
            out = yield self.inThread(calls, secure)
            self.assertEqual((out["unary"].text, out["unary"].payload), ("u", b"\x00\x01"))
            self.assertEqual(out["serverStream"], list(range(100)))
            self.assertEqual(out["clientStream"].text, ",".join(str(i) for i in range(50)))
            self.assertEqual(out["clientStream"].payload, b"50000")
            self.assertEqual(out["bidi"], [str(i) for i in range(20)])
            self.assertEqual(out["health"], health_pb2.HealthCheckResponse.SERVING)

    @defer.inlineCallbacks
    def test_deadlines(self):
        """DEADLINE_EXCEEDED at the client, and the handler is cancelled on the server."""
        release = threading.Event()
        self.addCleanup(release.set)

        def openRequests():
            yield Request(text="x")
            release.wait(30)      # the client never half-closes

        def calls():
            codes = []
            with self.channel() as channel:
                unary, serverStream, clientStream, bidi = self.methods(channel)
                for call in (lambda: unary(Request(hold=True), timeout=0.3),
                             lambda: list(serverStream(Request(count=2, hold=True),
                                                       timeout=0.3)),
                             lambda: clientStream(iter([Request(hold=True)]), timeout=0.3),
                             lambda: list(bidi(openRequests(), timeout=0.3))):
                    try:
                        call()
                    except grpc.RpcError as e:
                        codes.append(e.code())
            return codes
        codes = yield self.inThread(calls)
        self.assertEqual(codes, [grpc.StatusCode.DEADLINE_EXCEEDED] * 4)
        seen = set()
        for _ in range(4):
            seen.add((yield self.servicer.cancellations.get()))
        self.assertEqual(seen, {"Unary", "ServerStream", "ClientStream", "Bidi"})

    @defer.inlineCallbacks
    def test_cancellation(self):
        """A client's cancel (RST_STREAM CANCEL) reaches the handler, for each kind."""
        channel = self.channel()
        self.addCleanup(channel.close)
        unary, serverStream, clientStream, bidi = self.methods(channel)
        futures = [
            unary.future(Request(hold=True)),
            serverStream(Request(count=1, hold=True)),
            clientStream.future(iter([Request(hold=True)])),
        ]
        for _ in futures:
            yield self.servicer.arrivals.get()
        release = threading.Event()
        self.addCleanup(release.set)

        def requests():
            yield Request(text="x")
            release.wait(30)      # keep the stream open until cancelled
        replies = bidi(requests())
        first = yield self.inThread(next, replies)
        self.assertEqual(first.text, "x")
        yield self.servicer.arrivals.get()
        for f in futures + [replies]:
            f.cancel()
        seen = set()
        for _ in range(4):
            seen.add((yield self.servicer.cancellations.get()))
        self.assertEqual(seen, {"Unary", "ServerStream", "ClientStream", "Bidi"})
        self.assertTrue(all(f.cancelled() for f in futures[::2]))

    @defer.inlineCallbacks
    def test_withoutGreetingHangs(self):
        """
        The cmux lesson: a header matcher that does not greet first leaves
        grpcio waiting for the server's SETTINGS until its deadline.
        """
        quiet = SniffingFactory([
            (http2HeaderField(b"content-type", b"application/grpc", valuePrefix=True),
             self.grpcFactory)], timeout=5)
        port = yield TCP4ServerEndpoint(reactor, 0, interface=HOST).listen(quiet)
        self.addCleanup(serverSideClosed, port.getHost().port)
        self.addCleanup(port.stopListening)

        def call(target):
            with grpc.insecure_channel(target) as channel:
                try:
                    return self.methods(channel)[0](Request(text="?"), timeout=1).text
                except grpc.RpcError as e:
                    return e.code()
        code = yield self.inThread(call, "%s:%d" % (HOST, port.getHost().port))
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual((yield self.inThread(call, self.target)), "?")

    @defer.inlineCallbacks
    def test_statusAndMetadata(self):
        def calls():
            with self.channel() as channel:
                unary = self.methods(channel)[0]
                try:
                    unary(Request(code=5, text="gone: 100% ✓", payload=b"\x08\x05"), timeout=10)
                except grpc.RpcError as e:
                    error = (e.code(), e.details(), dict(e.trailing_metadata()))
                reply, call = unary.with_call(
                    Request(text="m"), timeout=10,
                    metadata=[("echo-x", "1"), ("echo-y-bin", b"\x00\xff")])
                return error, reply, call.initial_metadata(), call.trailing_metadata()
        error, reply, initial, trailing = yield self.inThread(calls)
        self.assertEqual(error[:2], (grpc.StatusCode.NOT_FOUND, "gone: 100% ✓"))
        self.assertEqual(error[2].get("grpc-status-details-bin"), b"\x08\x05")
        self.assertEqual(reply.text, "m")
        self.assertIn(("echo-x", "1"), tuple(initial))
        self.assertIn(("echo-y-bin", b"\x00\xff"), tuple(initial))
        self.assertIn(("trailer-bin", b"\x00\xfftrailer"), tuple(trailing))

    @defer.inlineCallbacks
    def test_refusals(self):
        """Unknown rpcs, oversized and compressed messages, with grpcio's view of them."""
        def calls():
            out = {}
            with self.channel() as channel:
                unary = self.methods(channel)[0]
                for name, call in (
                        ("unknown", lambda: channel.unary_unary("/no.Such/Method")(b"", timeout=10)),
                        ("tooLarge", lambda: unary(Request(payload=b"x" * (MAX_MESSAGE + 1)),
                                                   timeout=10))):
                    try:
                        call()
                    except grpc.RpcError as e:
                        out[name] = (e.code(), e.details())
            with self.channel() as channel:
                unary = self.methods(channel)[0]
                try:
                    unary(Request(text="squeeze me " * 100), timeout=10,
                          compression=grpc.Compression.Gzip)
                except grpc.RpcError as e:
                    out["compressed"] = (e.code(), e.details())
                out["afterwards"] = unary(Request(text="ok"), timeout=10).text
            return out
        out = yield self.inThread(calls)
        self.assertEqual(out["unknown"], (grpc.StatusCode.UNIMPLEMENTED,
                                          "unknown service no.Such"))
        self.assertEqual(out["tooLarge"][0], grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(out["compressed"][0], grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual(out["afterwards"], "ok")

    @defer.inlineCallbacks
    def test_samePortHTTP(self):
        """HTTP/1.1 and h2c to the Site on the port gRPC uses, gRPC meanwhile working."""
        curl = needBinary("curl")
        url = "http://%s/" % (self.target,)
        http11 = yield getProcessOutputAndValue(curl, ("-sS", "--max-time", "10", url))
        h2c = yield getProcessOutputAndValue(
            curl, ("-sS", "--max-time", "10", "--http2-prior-knowledge", "-w", "%{http_version}",
                   url))
        tlsOut = yield getProcessOutputAndValue(
            curl, ("-sS", "--max-time", "10", "--http1.1", "--cacert", self.caFile,
                   "--resolve", "localhost:%d:%s" % (self.port, HOST),
                   "https://localhost:%d/" % (self.port,)))
        self.assertEqual(http11[0], b"hello via HTTP/1.1")
        self.assertEqual(h2c[0], b"hello via HTTP/22")
        self.assertEqual(tlsOut[0], b"hello via HTTP/1.1 secure")

        def call():
            with self.channel() as channel:
                return self.methods(channel)[0](Request(text="still"), timeout=10).text
        self.assertEqual((yield self.inThread(call)), "still")


class CurlTests(OnePort):
    @defer.inlineCallbacks
    def test_trailersOnlyError(self):
        """
        curl shows the status in the response headers, and no body.

        The request has no body, so it ends with its HEADERS: curl 7.88
        loses an answer that arrives between its HEADERS and its DATA (it
        then hangs on the drained stream, or fails 92 on grpc-go's
        RST_STREAM NO_ERROR), and that race is curl's, not the server's.
        """
        curl = needBinary("curl")
        out, err, code = yield getProcessOutputAndValue(curl, (
            "-sS", "--max-time", "10", "-i", "--http2-prior-knowledge",
            "-H", "content-type: application/grpc", "-H", "te: trailers",
            "--data-binary", "", "http://%s/no.Such/Method" % (self.target,)))
        self.assertEqual(code, 0, err)
        head, _, body = out.replace(b"\r\n", b"\n").partition(b"\n\n")
        lines = head.lower().split(b"\n")
        self.assertEqual(lines[0].split()[:2], [b"http/2", b"200"])
        self.assertIn(b"content-type: application/grpc", lines)
        self.assertIn(b"grpc-status: 12", lines)
        self.assertIn(b"grpc-message: unknown service no.such", lines)
        self.assertEqual(body, b"")


class GoClientTests(OnePort):
    """grpc-go 1.33 (Debian) against the health service and etcd's KV and Watch."""

    @defer.inlineCallbacks
    def runClient(self, *args):
        from raftmux.testing.gopeer import buildGoProgram
        binary = yield threads.deferToThread(buildGoProgram, "grpcclient", "test/go/grpcclient")
        out, err, code = yield getProcessOutputAndValue(
            binary, ("-addr", self.target) + args, env=os.environ)
        self.assertEqual(code, 0, err)
        return {r["call"]: r for r in map(json.loads, out.decode().splitlines())}

    @defer.inlineCallbacks
    def check(self, *args):
        self.node.holdReads = True     # every linearizable read waits: a deadline passes
        results = yield self.runClient(*args)
        self.node.holdReads = False
        self.node.releaseReads()
        self.assertEqual(results["health.check"]["value"], "SERVING")
        self.assertEqual(results["health.check.unknown"]["code"], "NotFound")
        self.assertEqual(results["health.watch"]["value"], "SERVING")
        self.assertEqual(results["kv.put"]["code"], "OK")
        self.assertEqual(results["kv.range"]["value"], "go-value")
        self.assertEqual((results["kv.put.empty"]["code"], results["kv.put.empty"]["message"]),
                         ("InvalidArgument", "etcdserver: key is not provided"))
        self.assertEqual(results["kv.range.deadline"]["code"], "DeadlineExceeded")
        self.assertEqual(results["kv.unknown"]["code"], "Unimplemented")
        self.assertEqual((results["watch"]["code"], results["watch"]["value"]), ("OK", "seen"))

    def test_h2c(self):
        return self.check()

    def test_tls(self):
        return self.check("-ca", self.caFile, "-servername", "localhost")


class EtcdctlTests(OnePort):
    """etcdctl 3.4 (grpc-go 1.26, which waits for SETTINGS) through the sniffer."""

    @defer.inlineCallbacks
    def etcdctl(self, *args):
        binary = needBinary("etcdctl")
        env = dict(os.environ, ETCDCTL_API="3")
        out, err, code = yield getProcessOutputAndValue(binary, (
            "--endpoints", "http://%s" % (self.target,), "--dial-timeout", "5s",
            "--command-timeout", "10s") + args, env=env)
        self.assertEqual(code, 0, err)
        return (out + err).decode()

    @defer.inlineCallbacks
    def test_putGetDelete(self):
        self.assertEqual((yield self.etcdctl("put", "greeting", "hello")), "OK\n")
        self.assertEqual((yield self.etcdctl("get", "greeting")), "greeting\nhello\n")
        self.assertEqual((yield self.etcdctl("del", "greeting")), "1\n")
        self.assertEqual((yield self.etcdctl("get", "greeting")), "")
        members = yield self.etcdctl("member", "list")
        self.assertIn("%x" % (self.node.memberID,), members)
        health = yield self.etcdctl("endpoint", "health")
        self.assertIn("is healthy", health)


class ExampleTests(TestCase):
    """docs/examples/grpc_oneport.py, the gRPC chapter's example, runs as written."""

    @defer.inlineCallbacks
    def test_runs(self):
        import sys

        import raftmux
        root = os.path.dirname(os.path.dirname(os.path.abspath(raftmux.__file__)))
        path = os.path.join(root, "docs", "examples", "grpc_oneport.py")
        if not os.path.exists(path):
            raise SkipTest("docs/examples is not shipped with this raftmux")
        env = dict(os.environ, PYTHONPATH=root)
        out, err, code = yield getProcessOutputAndValue(sys.executable, [path], env=env)
        self.assertEqual(code, 0, err)
        self.assertEqual(out.decode().splitlines(), [
            "put: revision 2",
            "range: [('greeting', 'hello')]",
            "watch: created True",
            "watch: saw ['hello again']",
            "health: SERVING",
            "error: INVALID_ARGUMENT etcdserver: key is not provided",
        ])
