"""
The test service ``raftmux.test.Echo`` (``grpctest.proto``): one rpc of
each kind, written in each of the handler styles the server takes (a
plain return, ``async def`` with ``await call.send``, ``async for``, a
push receiver), with knobs in the request to fail, hold and stream.
"""

from twisted.internet.defer import CancelledError, Deferred, DeferredQueue

from raftmux.grpc import GRPCError, Service
from raftmux.test import grpctest_pb2

__all__ = ["ECHO", "EchoServicer", "echoService", "grpctest_pb2"]

ECHO = grpctest_pb2.DESCRIPTOR.services_by_name["Echo"]
Reply = grpctest_pb2.EchoReply


class EchoServicer:
    """
    ``cancelled`` lists the rpcs whose handler saw a cancellation (also put
    on the ``cancellations`` queue); ``calls`` the ``ServerCall``s in order
    (also put on ``arrivals``).
    """

    def __init__(self):
        self.cancelled = []
        self.cancellations = DeferredQueue()
        self.calls = []
        self.arrivals = DeferredQueue()

    def _arrived(self, call):
        self.calls.append(call)
        self.arrivals.put(call)

    def sawCancel(self, name):
        self.cancelled.append(name)
        self.cancellations.put(name)

    def _hold(self, name):
        return Deferred(lambda _: self.sawCancel(name))

    def Unary(self, request, call):
        self._arrived(call)
        echoed = [(k, v) for k, v in call.metadata if k.startswith("echo-")]
        if echoed:
            call.sendInitialMetadata(echoed)
            call.setTrailingMetadata([("trailer-bin", b"\x00\xfftrailer")])
        if request.hold:
            return self._hold("Unary")
        if request.code:
            raise GRPCError(request.code, request.text, details=request.payload or None)
        return Reply(text=request.text, payload=request.payload)

    async def ServerStream(self, request, call):
        self._arrived(call)
        try:
            for i in range(request.count):
                await call.send(Reply(text=request.text, payload=request.payload, index=i))
            if request.hold:
                await Deferred()
        except CancelledError:
            self.sawCancel("ServerStream")
            raise
        if request.code:
            raise GRPCError(request.code, request.text)

    async def ClientStream(self, call):
        self._arrived(call)
        texts = []
        size = 0
        try:
            async for request in call:
                if request.hold:
                    await Deferred()
                if request.code:
                    raise GRPCError(request.code, request.text)
                texts.append(request.text)
                size += len(request.payload)
        except CancelledError:
            self.sawCancel("ClientStream")
            raise
        return Reply(text=",".join(texts), index=len(texts), payload=b"%d" % (size,))

    def Bidi(self, call):
        self._arrived(call)
        return _BidiReceiver(self, call)


class _BidiReceiver:
    """Push style: a reply (or ``count`` replies) per request as it arrives."""

    def __init__(self, servicer, call):
        self._servicer = servicer
        self._call = call

    def receive(self, request):
        if request.code:
            self._call.finish(GRPCError(request.code, request.text))
            return
        for i in range(request.count or 1):
            self._call.sendMessage(Reply(text=request.text, payload=request.payload, index=i))

    def requestsDone(self):
        self._call.finish()

    def cancel(self):
        self._servicer.sawCancel("Bidi")


def echoService(servicer=None):
    """A ``Service`` for ``raftmux.test.Echo`` (and its servicer)."""
    servicer = servicer if servicer is not None else EchoServicer()
    return Service(ECHO, servicer, modules=[grpctest_pb2])
