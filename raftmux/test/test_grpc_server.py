# -*- test-case-name: raftmux.test.test_grpc_server -*-
"""
The gRPC server and client in memory (``raftmux.grpc.testing.MemoryGRPC``:
iosim transports, a ``Clock``), and the server's exact frames seen by a
raw ``h2`` client: all four kinds of rpc, every handler style, metadata,
statuses, deadlines, cancellation reaching the handler, message limits,
back-pressure, the health service and the router.
"""

import h2.config
import h2.connection
import h2.events
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from raftmux.grpc import Code, GRPCClient, GRPCError, GRPCServer, HealthServicer, Service
from raftmux.grpc.testing import MemoryGRPC
from raftmux.grpc.wire import encodeMessage
from raftmux.grpcpb import HEALTH, health_pb2
from raftmux.h2 import H2Config, H2ConnectionPool, HandlerFactory
from raftmux.test.grpcecho import ECHO, EchoServicer, echoService, grpctest_pb2

Request = grpctest_pb2.EchoRequest
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class _Memory(SynchronousTestCase):
    """A server with the Echo service and a client to it, in memory."""

    serverConfig = None

    def setUp(self):
        self.serve(EchoServicer())

    def serve(self, servicer, **handlers):
        """Serve ``servicer``, some of its rpcs replaced by ``handlers``."""
        for name, handler in handlers.items():
            setattr(servicer, name, handler)
        self.servicer = servicer
        self.server = GRPCServer([echoService(servicer)])
        self.memory = MemoryGRPC(self.server, serverConfig=self.serverConfig)
        self.client = self.memory.client
        self.echo = self.client.stub(ECHO, [grpctest_pb2])
        self.health = self.client.stub(HEALTH)

    def result(self, d):
        self.memory.flush()
        return self.successResultOf(d)

    def failure(self, d, code):
        self.memory.flush()
        failure = self.failureResultOf(d, GRPCError)
        self.assertEqual(failure.value.code, code, failure.value)
        return failure.value

    def readAll(self, call):
        out = []
        for _ in range(100000):
            d = call.receive()
            self.memory.flush()
            message = self.successResultOf(d)
            if message is None:
                return out
            out.append(message)
        raise AssertionError("too many messages")


class UnaryTests(_Memory):
    def test_ok(self):
        reply = self.result(self.echo.Unary(Request(text="hi", payload=b"\x00\x01")))
        self.assertEqual((reply.text, reply.payload), ("hi", b"\x00\x01"))

    def test_oneConnection(self):
        """Concurrent calls share one connection (up to the server's stream limit)."""
        ds = [self.echo.Unary(Request(text=str(i))) for i in range(100)]
        self.memory.flush()
        self.assertEqual([self.successResultOf(d).text for d in ds], [str(i) for i in range(100)])
        self.assertEqual(len(self.memory.connections), 1)

    def test_errorStatus(self):
        error = self.failure(self.echo.Unary(Request(code=Code.NOT_FOUND, text="no 100% ✓",
                                                     payload=b"\x08\x05")), Code.NOT_FOUND)
        self.assertEqual(error.message, "no 100% ✓")
        self.assertEqual(error.details, b"\x08\x05")

    def test_metadataBothWays(self):
        call = self.client.call(self.echo.methods["Unary"], metadata=[
            ("echo-a", "1"), ("echo-b-bin", b"\x00\xff"), ("other", "x")])
        call.sendMessage(Request(text="m"))
        call.closeSend()
        reply = self.result(call.response())
        self.assertEqual(reply.text, "m")
        self.assertEqual(call.initialMetadata, [("echo-a", "1"), ("echo-b-bin", b"\x00\xff")])
        self.assertEqual(call.trailingMetadata, [("trailer-bin", b"\x00\xfftrailer")])
        seen = self.servicer.calls[0].metadata
        self.assertIn(("other", "x"), seen)
        self.assertIn(("user-agent", "grpc-python-raftmux/0.1"), seen)

    def test_unknownService(self):
        error = self.failure(self.client.unaryUnary(
            self.echo.methods["Unary"]._replace(path="/no.Such/Unary"), Request()),
            Code.UNIMPLEMENTED)
        self.assertEqual(error.message, "unknown service no.Such")

    def test_unknownMethod(self):
        error = self.failure(self.client.unaryUnary(
            self.echo.methods["Unary"]._replace(path="/raftmux.test.Echo/Nope"), Request()),
            Code.UNIMPLEMENTED)
        self.assertEqual(error.message, "unknown method Nope for service raftmux.test.Echo")

    def test_missingImplementation(self):
        """An rpc the implementation lacks is UNIMPLEMENTED too."""
        server = GRPCServer([Service(ECHO, object(), modules=[grpctest_pb2])])
        memory = MemoryGRPC(server)
        d = memory.client.stub(ECHO, [grpctest_pb2]).Unary(Request())
        memory.flush()
        self.assertEqual(self.failureResultOf(d, GRPCError).value.code, Code.UNIMPLEMENTED)

    def test_handlerException(self):
        self.serve(EchoServicer(), Unary=lambda request, call: 1 / 0)
        error = self.failure(self.echo.Unary(Request()), Code.UNKNOWN)
        self.assertIn("division by zero", error.message)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_handlerReturnsNothing(self):
        self.serve(EchoServicer(), Unary=lambda request, call: None)
        self.failure(self.echo.Unary(Request()), Code.INTERNAL)

    def test_deferredHandler(self):
        d = Deferred()
        self.serve(EchoServicer(), Unary=lambda request, call: d)
        result = self.echo.Unary(Request())
        self.memory.flush()
        self.assertNoResult(result)
        d.callback(grpctest_pb2.EchoReply(text="later"))
        self.assertEqual(self.result(result).text, "later")

    def test_asyncHandler(self):
        release = Deferred()

        async def unary(request, call):
            await release
            return grpctest_pb2.EchoReply(text=request.text * 2)
        self.serve(EchoServicer(), Unary=unary)
        result = self.echo.Unary(Request(text="ab"))
        self.memory.flush()
        self.assertNoResult(result)
        release.callback(None)
        self.assertEqual(self.result(result).text, "abab")

    def test_deadline(self):
        """The client's deadline: DEADLINE_EXCEEDED, and the handler's Deferred is cancelled."""
        result = self.echo.Unary(Request(hold=True), timeout=2.5)
        self.memory.flush()
        self.assertNoResult(result)
        call = self.servicer.calls[0]
        self.assertAlmostEqual(call.timeRemaining(), 2.5, places=3)
        self.memory.advance(2.5)
        self.assertEqual(self.failureResultOf(result, GRPCError).value.message,
                         "Deadline Exceeded")
        self.assertEqual(self.servicer.cancelled, ["Unary"])
        self.assertTrue(call.cancelled)

    def test_cancel(self):
        """Cancelling the client's Deferred resets the stream; the handler is cancelled."""
        result = self.echo.Unary(Request(hold=True))
        self.memory.flush()
        cancelled = self.servicer.calls[0].notifyCancel()
        result.cancel()
        self.memory.flush()
        self.failureResultOf(result, CancelledError)
        self.assertEqual(self.servicer.cancelled, ["Unary"])
        self.successResultOf(cancelled)

    def test_cancelBeforeConnected(self):
        """A call cancelled while its connection is being dialled stops waiting."""
        dials = []

        class Endpoint:
            def connect(self, factory):
                dials.append(Deferred())
                return dials[-1]
        pool = H2ConnectionPool(self.memory.clock, endpointFactory=lambda origin: Endpoint())
        client = GRPCClient(self.memory.clock, "http://x", pool=pool)
        result = client.stub(ECHO, [grpctest_pb2]).Unary(Request(text="x"))
        self.assertEqual(len(dials), 1)
        result.cancel()
        self.failureResultOf(result, CancelledError)

    def test_connectFails(self):
        """A target that cannot be reached: UNAVAILABLE."""
        class Endpoint:
            def connect(self, factory):
                return fail(ConnectionRefusedError("no one there"))
        pool = H2ConnectionPool(self.memory.clock, endpointFactory=lambda origin: Endpoint())
        client = GRPCClient(self.memory.clock, "http://x", pool=pool)
        result = client.stub(ECHO, [grpctest_pb2]).Unary(Request(text="x"))
        self.assertEqual(self.failureResultOf(result, GRPCError).value.code, Code.UNAVAILABLE)

    def test_requestTooLarge(self):
        self.server.maxReceiveMessageSize = 100
        error = self.failure(self.echo.Unary(Request(payload=b"x" * 200)),
                             Code.RESOURCE_EXHAUSTED)
        self.assertIn("larger than max", error.message)
        self.assertEqual(self.servicer.calls, [])
        self.assertEqual(self.memory.connections[0][1].held, 0)

    def test_responseTooLarge(self):
        memory = MemoryGRPC(self.server, maxReceiveMessageSize=100)
        d = memory.client.stub(ECHO, [grpctest_pb2]).Unary(Request(payload=b"x" * 200))
        memory.flush()
        self.assertEqual(self.failureResultOf(d, GRPCError).value.code, Code.RESOURCE_EXHAUSTED)
        self.assertEqual(memory.connections[0][0].held, 0)

    def test_largeMessages(self):
        """Messages larger than the stream window (1 MiB) and the frame size arrive whole."""
        payload = bytes(range(256)) * (3 * 4096)
        self.assertEqual(self.result(self.echo.Unary(Request(payload=payload))).payload, payload)
        self.assertEqual(self.memory.connections[0][1].held, 0)


class StreamingTests(_Memory):
    def test_serverStreaming(self):
        call = self.echo.ServerStream(Request(text="s", count=5))
        replies = self.readAll(call)
        self.assertEqual([r.index for r in replies], [0, 1, 2, 3, 4])
        self.successResultOf(call.whenDone())

    def test_serverStreamingThenError(self):
        call = self.echo.ServerStream(Request(text="late error", count=2, code=Code.ABORTED))
        first = call.receive()
        second = call.receive()
        third = call.receive()
        self.memory.flush()
        self.assertEqual(self.successResultOf(first).index, 0)
        self.assertEqual(self.successResultOf(second).index, 1)
        self.assertEqual(self.failureResultOf(third, GRPCError).value.code, Code.ABORTED)
        self.assertEqual(self.failureResultOf(call.whenDone(), GRPCError).value.message,
                         "late error")

    def test_serverStreamingBackPressure(self):
        """
        A client that does not read: the stream's window closes, the
        handler's ``await call.send`` waits, and what the server holds is
        bounded; reading again lets everything through, in order.
        """
        count = 3000
        call = self.echo.ServerStream(Request(count=count, payload=b"p" * 1024))
        self.memory.flush()
        server = self.servicer.calls[0]
        self.assertTrue(server.congested)
        queued = server.transport.pendingBytes
        # The handler stopped: the bytes it wrote are the client's window
        # (1 MiB), the client's inbox and one high-water mark, not 3 MiB.
        self.assertLess(queued, 200 * 1024)
        replies = self.readAll(call)
        self.assertEqual([r.index for r in replies], list(range(count)))

    def test_serverStreamingCancel(self):
        call = self.echo.ServerStream(Request(count=1, hold=True))
        first = call.receive()
        self.memory.flush()
        self.assertEqual(self.successResultOf(first).index, 0)
        call.cancel()
        self.memory.flush()
        self.assertEqual(self.servicer.cancelled, ["ServerStream"])
        self.assertEqual(self.failureResultOf(call.whenDone(), GRPCError).value.code,
                         Code.CANCELLED)

    def test_clientStreaming(self):
        call = self.echo.ClientStream()
        for i in range(40):
            call.sendMessage(Request(text=str(i), payload=b"z" * 100))
        call.closeSend()
        reply = self.result(call.response())
        self.assertEqual(reply.text, ",".join(str(i) for i in range(40)))
        self.assertEqual((reply.index, reply.payload), (40, b"4000"))

    def test_clientStreamingNoMessages(self):
        call = self.echo.ClientStream()
        call.closeSend()
        self.assertEqual(self.result(call.response()).index, 0)

    def test_clientStreamingError(self):
        call = self.echo.ClientStream()
        call.sendMessage(Request(text="a"))
        call.sendMessage(Request(code=Code.INVALID_ARGUMENT, text="bad"))
        self.failure(call.response(), Code.INVALID_ARGUMENT)

    def test_clientStreamingCancelledByClient(self):
        call = self.echo.ClientStream()
        call.sendMessage(Request(text="a"))
        response = call.response()
        self.memory.flush()
        response.cancel()
        self.memory.flush()
        self.failureResultOf(response, CancelledError)
        self.assertEqual(self.servicer.cancelled, ["ClientStream"])

    def test_clientStreamingInboundBackPressure(self):
        """A handler that stops reading pauses the stream; the client's sends then wait."""
        release = Deferred()
        seen = []

        async def slow(call):
            await release
            async for request in call:
                seen.append(request.text)
            return grpctest_pb2.EchoReply(index=len(seen))
        self.serve(EchoServicer(), ClientStream=slow)
        call = self.echo.ClientStream()
        self.memory.flush()
        waits = []
        for i in range(3000):
            waits.append(call.send(Request(text=str(i), payload=b"q" * 1024)))
        self.memory.flush()
        self.assertNoResult(waits[-1])
        self.assertTrue(call.congested)
        call.closeSend()
        release.callback(None)
        self.memory.flush()
        self.assertEqual(self.result(call.response()).index, 3000)
        self.assertEqual(seen, [str(i) for i in range(3000)])
        self.successResultOf(waits[-1])

    def test_bidiPush(self):
        call = self.echo.Bidi()
        call.sendMessage(Request(text="a", count=2))
        first = call.receive()
        second = call.receive()
        self.memory.flush()
        self.assertEqual([self.successResultOf(d).text for d in (first, second)], ["a", "a"])
        call.sendMessage(Request(text="b"))
        third = call.receive()
        self.memory.flush()
        self.assertEqual(self.successResultOf(third).text, "b")
        call.closeSend()
        end = call.receive()
        self.memory.flush()
        self.assertIsNone(self.successResultOf(end))
        self.successResultOf(call.whenDone())

    def test_bidiErrorMidStream(self):
        call = self.echo.Bidi()
        call.sendMessage(Request(text="a"))
        call.sendMessage(Request(code=Code.FAILED_PRECONDITION, text="stop"))
        call.sendMessage(Request(text="ignored"))
        self.memory.flush()
        self.assertEqual(self.successResultOf(call.receive()).text, "a")
        self.assertEqual(self.failureResultOf(call.receive(), GRPCError).value.code,
                         Code.FAILED_PRECONDITION)

    def test_bidiCancelReachesReceiver(self):
        call = self.echo.Bidi()
        call.sendMessage(Request(text="a"))
        self.memory.flush()
        call.cancel()
        self.memory.flush()
        self.assertEqual(self.servicer.cancelled, ["Bidi"])

    def test_asyncIteration(self):
        call = self.echo.ServerStream(Request(count=3))
        texts = []

        async def read():
            async for reply in call:
                texts.append(reply.index)
        d = Deferred.fromCoroutine(read())
        self.memory.flush()
        self.successResultOf(d)
        self.assertEqual(texts, [0, 1, 2])

    def test_connectionLostCancels(self):
        """The connection going cancels every rpc on it."""
        call = self.echo.Bidi()
        unary = self.echo.Unary(Request(hold=True))
        self.memory.flush()
        clientProtocol, serverProtocol = self.memory.connections[0]
        serverProtocol.transport.abortConnection()
        self.memory.flush()
        self.assertEqual(sorted(self.servicer.cancelled), ["Bidi", "Unary"])
        self.assertEqual(self.failureResultOf(unary, GRPCError).value.code, Code.UNAVAILABLE)
        self.assertEqual(self.failureResultOf(call.whenDone(), GRPCError).value.code,
                         Code.UNAVAILABLE)


class HealthTests(_Memory):
    def test_check(self):
        self.assertEqual(self.result(self.health.Check(health_pb2.HealthCheckRequest())).status,
                         SERVING)
        self.assertEqual(self.result(self.health.Check(health_pb2.HealthCheckRequest(
            service="raftmux.test.Echo"))).status, SERVING)
        error = self.failure(self.health.Check(health_pb2.HealthCheckRequest(service="nope")),
                             Code.NOT_FOUND)
        self.assertEqual(error.message, "unknown service")
        self.server.health.setStatus("", NOT_SERVING)
        self.assertEqual(self.result(self.health.Check(health_pb2.HealthCheckRequest())).status,
                         NOT_SERVING)

    def test_watch(self):
        health = self.server.health
        call = self.health.Watch(health_pb2.HealthCheckRequest())
        self.assertEqual(self.result(call.receive()).status, SERVING)
        health.setStatus("", NOT_SERVING)
        self.assertEqual(self.result(call.receive()).status, NOT_SERVING)
        health.setStatus("", NOT_SERVING)  # no change, nothing sent
        nothing = call.receive()
        self.memory.flush()
        self.assertNoResult(nothing)
        self.assertEqual(health.watchers(""), 1)
        health.shutdown()
        health.setStatus("", SERVING)   # ignored after shutdown
        health.resume()
        self.assertEqual(self.result(nothing).status, SERVING)
        call.cancel()
        self.memory.flush()
        self.assertEqual(health.watchers(""), 0)

    def test_watchUnknown(self):
        call = self.health.Watch(health_pb2.HealthCheckRequest(service="later"))
        self.assertEqual(self.result(call.receive()).status, SERVICE_UNKNOWN)
        self.server.health.setStatus("later", SERVING)
        self.assertEqual(self.result(call.receive()).status, SERVING)
        self.server.health.clearStatus("later")
        self.assertEqual(self.result(call.receive()).status, SERVICE_UNKNOWN)

    def test_tracked(self):
        """A tracked status is read at each Check and polled while watched."""
        health = self.server.health
        state = {"status": SERVING}
        health.track("", lambda: state["status"], self.memory.clock, interval=2)
        health.setStatus("", NOT_SERVING)     # ignored: the source decides
        self.assertEqual(self.result(self.health.Check(health_pb2.HealthCheckRequest())).status,
                         SERVING)
        state["status"] = NOT_SERVING
        self.assertEqual(self.result(self.health.Check(health_pb2.HealthCheckRequest())).status,
                         NOT_SERVING)
        call = self.health.Watch(health_pb2.HealthCheckRequest())
        self.assertEqual(self.result(call.receive()).status, NOT_SERVING)
        state["status"] = SERVING
        changed = call.receive()
        self.memory.advance(1.9)
        self.assertNoResult(changed)
        self.memory.advance(0.1)
        self.assertEqual(self.successResultOf(changed).status, SERVING)
        call.cancel()
        self.memory.flush()
        self.memory.advance(2)
        self.assertEqual(self.memory.clock.getDelayedCalls(), [])
        health.shutdown()
        self.assertEqual(health.status(""), NOT_SERVING)
        health.resume()
        self.assertEqual(health.status(""), SERVING)

    def test_sharedServicer(self):
        health = HealthServicer()
        server = GRPCServer(health=health)
        self.assertIs(server.health, health)
        self.assertEqual(server.serviceNames, ["grpc.health.v1.Health"])


class _Raw:
    """A raw ``h2`` client on a ``StringTransport`` to a server protocol."""

    def __init__(self, factory):
        self.server = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.server.makeConnection(self.transport)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.events = []
        self.exchange()

    def exchange(self):
        for _ in range(100):
            out = self.conn.data_to_send()
            if out:
                self.server.dataReceived(out)
            data = self.transport.value()
            self.transport.clear()
            if data:
                self.events.extend(self.conn.receive_data(data))
            if not out and not data:
                return

    def request(self, path, body=b"", end=True, headers=(), method=b"POST",
                contentType=b"application/grpc"):
        sid = self.conn.get_next_available_stream_id()
        block = [(b":method", method), (b":scheme", b"http"), (b":path", path),
                 (b":authority", b"x"), (b"content-type", contentType), (b"te", b"trailers")]
        block.extend(headers)
        self.conn.send_headers(sid, block, end_stream=end and not body)
        if body:
            self.conn.send_data(sid, body, end_stream=end)
        self.exchange()
        return sid

    def on(self, sid):
        return [e for e in self.events if getattr(e, "stream_id", None) == sid]


class WireTests(SynchronousTestCase):
    """What the server puts on the wire."""

    def setUp(self):
        self.clock = Clock()
        self.servicer = EchoServicer()
        self.server = GRPCServer([echoService(self.servicer)])
        self.raw = _Raw(self.server.serverFactory(clock=self.clock))

    def test_trailersOnly(self):
        """An immediate error is one HEADERS frame with END_STREAM."""
        sid = self.raw.request(b"/no.Such/Thing", encodeMessage(b""))
        events = self.raw.on(sid)
        self.assertIsInstance(events[0], h2.events.ResponseReceived)
        self.assertEqual(events[0].headers, [
            (b":status", b"200"), (b"content-type", b"application/grpc"),
            (b"grpc-status", b"12"), (b"grpc-message", b"unknown service no.Such")])
        self.assertIsInstance(events[1], h2.events.StreamEnded)
        self.assertFalse([e for e in events if isinstance(e, h2.events.DataReceived)])

    def test_trailersOnlyResetsAnOpenRequest(self):
        """
        The client still sending when the immediate error goes out: RST_STREAM
        NO_ERROR follows the trailers, as grpc-go's server sends, instead of
        the stream waiting on a body nobody reads.
        """
        sid = self.raw.request(b"/no.Such/Thing", end=False)
        events = self.raw.on(sid)
        self.assertEqual([type(e).__name__ for e in events],
                         ["ResponseReceived", "StreamEnded", "StreamReset"])
        self.assertEqual(events[2].error_code, 0)
        self.assertEqual(self.raw.server.streams, {})

    def test_okFrames(self):
        body = encodeMessage(Request(text="w").SerializeToString())
        sid = self.raw.request(b"/raftmux.test.Echo/Unary", body)
        kinds = [type(e).__name__ for e in self.raw.on(sid)]
        self.assertEqual(kinds, ["ResponseReceived", "DataReceived", "TrailersReceived",
                                 "StreamEnded"])
        trailers = self.raw.on(sid)[2].headers
        self.assertEqual(trailers, [(b"grpc-status", b"0")])

    def test_serverDeadline(self):
        """The server's own timer: DEADLINE_EXCEEDED trailers, the handler cancelled."""
        body = encodeMessage(Request(hold=True).SerializeToString())
        sid = self.raw.request(b"/raftmux.test.Echo/Unary", body,
                               headers=[(b"grpc-timeout", b"1500m")])
        self.assertEqual(self.raw.on(sid), [])
        self.clock.advance(1.5)
        self.raw.exchange()
        headers = self.raw.on(sid)[0].headers
        self.assertIn((b"grpc-status", b"4"), headers)
        self.assertIn((b"grpc-message", b"Deadline Exceeded"), headers)
        self.assertEqual(self.servicer.cancelled, ["Unary"])

    def test_malformedTimeout(self):
        sid = self.raw.request(b"/raftmux.test.Echo/Unary", encodeMessage(b""),
                               headers=[(b"grpc-timeout", b"soon")])
        self.assertIn((b"grpc-status", b"13"), self.raw.on(sid)[0].headers)
        self.assertEqual(self.servicer.calls, [])

    def test_compressedMessage(self):
        sid = self.raw.request(b"/raftmux.test.Echo/Unary", b"\x01\x00\x00\x00\x02xx",
                               headers=[(b"grpc-encoding", b"gzip")])
        headers = self.raw.on(sid)[0].headers
        self.assertIn((b"grpc-status", b"12"), headers)
        self.assertEqual(self.servicer.calls, [])

    def test_badPayloadFlag(self):
        sid = self.raw.request(b"/raftmux.test.Echo/Unary", b"\x07\x00\x00\x00\x00")
        self.assertIn((b"grpc-status", b"13"), self.raw.on(sid)[0].headers)

    def test_unparseableMessage(self):
        sid = self.raw.request(b"/raftmux.test.Echo/Unary", encodeMessage(b"\xff\xff\xff"))
        self.assertIn((b"grpc-status", b"13"), self.raw.on(sid)[0].headers)

    def test_truncatedMessage(self):
        sid = self.raw.request(b"/raftmux.test.Echo/Unary", encodeMessage(b"\x0a\x05hello")[:-2])
        self.assertIn((b"grpc-status", b"13"), self.raw.on(sid)[0].headers)
        self.assertEqual(self.raw.server.held, 0)

    def test_noRequestMessage(self):
        sid = self.raw.request(b"/raftmux.test.Echo/Unary")
        self.assertIn((b"grpc-status", b"12"), self.raw.on(sid)[0].headers)

    def test_twoRequestMessages(self):
        body = encodeMessage(b"") * 2
        sid = self.raw.request(b"/raftmux.test.Echo/Unary", body)
        statuses = [h for e in self.raw.on(sid) for h in getattr(e, "headers", None) or []
                    if h[0] == b"grpc-status"]
        self.assertEqual(statuses, [(b"grpc-status", b"12")])

    def test_earlyErrorResetsSendingClient(self):
        """An answer while the client still sends: trailers, then RST_STREAM NO_ERROR."""
        sid = self.raw.request(b"/raftmux.test.Echo/ClientStream",
                               encodeMessage(Request(code=5).SerializeToString()), end=False)
        events = self.raw.on(sid)
        self.assertIn((b"grpc-status", b"5"), events[0].headers)
        resets = [e for e in events if isinstance(e, h2.events.StreamReset)]
        self.assertEqual([e.error_code for e in resets], [0])

    def test_get405(self):
        sid = self.raw.request(b"/raftmux.test.Echo/Unary", method=b"GET")
        self.assertEqual(self.raw.on(sid)[0].headers[0], (b":status", b"405"))

    def test_notGRPC415(self):
        sid = self.raw.request(b"/raftmux.test.Echo/Unary", contentType=b"application/json")
        self.assertEqual(self.raw.on(sid)[0].headers[0], (b":status", b"415"))

    def test_partialMessageHeldThenReset(self):
        """Bytes held for a partial message are given back when the client resets."""
        sid = self.raw.request(b"/raftmux.test.Echo/ClientStream",
                               encodeMessage(b"\x0a" * 5000)[:3000], end=False)
        self.assertEqual(self.raw.server.held, 2995)
        self.raw.conn.reset_stream(sid, 8)
        self.raw.exchange()
        self.clock.advance(0)
        self.assertEqual(self.raw.server.held, 0)
        self.assertEqual(self.servicer.cancelled, ["ClientStream"])


class _Plain:
    """Echo's four rpcs with no knobs (random requests must not hold or loop)."""

    def Unary(self, request, call):
        return grpctest_pb2.EchoReply(text=request.text)

    def ServerStream(self, request, call):
        call.sendMessage(grpctest_pb2.EchoReply(text=request.text))

    async def ClientStream(self, call):
        n = 0
        async for _ in call:
            n += 1
        return grpctest_pb2.EchoReply(index=n)

    async def Bidi(self, call):
        async for request in call:
            await call.send(grpctest_pb2.EchoReply(text=request.text))


class RandomInputTests(SynchronousTestCase):
    """Whatever a client sends as a request body, the answer is a gRPC status."""

    @given(st.lists(st.binary(max_size=300), max_size=6),
           st.sampled_from(["Unary", "ClientStream", "Bidi", "ServerStream"]),
           st.booleans())
    @settings(max_examples=150, deadline=None)
    def test_randomBodies(self, pieces, rpc, reset):
        server = GRPCServer([Service(ECHO, _Plain(), modules=[grpctest_pb2])],
                            maxReceiveMessageSize=200)
        clock = Clock()
        raw = _Raw(server.serverFactory(clock=clock))
        sid = raw.request(("/raftmux.test.Echo/" + rpc).encode(), end=False)
        for piece in pieces:
            if piece and sid in raw.conn.streams and raw.conn.streams[sid].open:
                raw.conn.send_data(sid, piece)
                raw.exchange()
        if sid in raw.conn.streams and raw.conn.streams[sid].open:
            if reset:
                raw.conn.reset_stream(sid, 8)
            else:
                raw.conn.end_stream(sid)
            raw.exchange()
        clock.advance(0)
        raw.exchange()
        statuses = [value for e in raw.on(sid) for name, value in getattr(e, "headers", None) or ()
                    if name == b"grpc-status"]
        if not reset:
            self.assertEqual(len(statuses), 1, raw.on(sid))
            self.assertTrue(statuses[0].isdigit())
        self.assertEqual(raw.server.held, 0)
        self.assertEqual(raw.server.streams, {})


class RouterTests(SynchronousTestCase):
    def test_fallback(self):
        """Non-gRPC requests go to the fallback router."""
        seen = []

        class Fallback:
            def route(self, request):
                seen.append(request.path)
                return HandlerFactory(lambda stream: stream.respond(204))

        server = GRPCServer()
        raw = _Raw(server.serverFactory(clock=Clock(), fallback=Fallback()))
        sid = raw.request(b"/other", contentType=b"application/x.ckit")
        self.assertEqual(raw.on(sid)[0].headers[0], (b":status", b"204"))
        sid = raw.request(b"/grpc.health.v1.Health/Check",
                          encodeMessage(health_pb2.HealthCheckRequest().SerializeToString()),
                          contentType=b"application/grpc+proto")
        self.assertIn((b"grpc-status", b"0"), raw.on(sid)[2].headers)
        self.assertEqual(seen, [b"/other"])

    def test_grpcWebIsNotGRPC(self):
        raw = _Raw(GRPCServer().serverFactory(clock=Clock()))
        sid = raw.request(b"/grpc.health.v1.Health/Check",
                          contentType=b"application/grpc-web")
        self.assertEqual(raw.on(sid)[0].headers[0], (b":status", b"415"))

    def test_config(self):
        factory = GRPCServer().serverFactory(H2Config(maxConcurrentStreams=7), clock=Clock())
        self.assertEqual(factory.config.maxConcurrentStreams, 7)
        self.assertEqual(GRPCServer().serverFactory().config.maxConcurrentStreams, 1000)
