# -*- test-case-name: raftmux.test.test_grpc_etcd -*-
"""
etcd's v3 API (``raftmux.etcd.EtcdAPI``) over the gRPC server: one
``Service`` per etcd service, its rpcs taken from
``raftmux.etcdpb.METHODS``.

The binding only translates: a unary rpc calls the service's method and
maps an ``EtcdError`` to its gRPC status; a streaming rpc hands the
service a responder (the ``ServerCall`` behind a thin adapter that turns
``finish(EtcdError)`` into the status) and feeds the handler it returns.
etcd's ``hasleader`` metadata (``clientv3.WithRequireLeader``) is honoured:
with no leader such an rpc answers ``etcdserver: no leader``.

``EtcdGRPCRouter`` serves whatever ``EtcdAPI`` a member has *now* (a
``RaftNode`` builds its API only once it starts, after its ports listen):
Health answers from the first connection, the etcd services once the API
exists (UNAVAILABLE before).
"""

from types import SimpleNamespace

from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from raftmux.etcd.guard import Guard
from raftmux.etcd.interfaces import IResponder
from raftmux.etcdpb import METHODS
from raftmux.grpc.health import HealthServicer
from raftmux.grpc.server import GRPCServer
from raftmux.grpc.service import Service
from raftmux.grpc.status import Code, GRPCError
from raftmux.grpc.wire import isGRPCContentType, statusHeaders
from raftmux.grpcpb import HEALTH, Method
from raftmux.h2 import HandlerFactory, StatusResponse
from raftmux.h2.interfaces import IH2Router
from raftmux.mvcc.errors import EtcdError

__all__ = ["EtcdGRPCRouter", "etcdServices", "etcdGRPCServer", "grpcError"]

#: the metadata key clientv3.WithRequireLeader sets
REQUIRE_LEADER = "hasleader"


def grpcError(error):
    """An ``EtcdError`` (class or instance) as the ``GRPCError`` etcd answers."""
    if isinstance(error, type):
        error = error()
    return GRPCError(error.code, error.message)


def _translate(failure):
    if failure.check(EtcdError):
        return Failure(grpcError(failure.value))
    return failure


@implementer(IResponder, IPushProducer)
class _Responder:
    """etcd's ``IResponder`` over a ``ServerCall``: errors become gRPC statuses."""

    __slots__ = ("_call",)

    def __init__(self, call):
        self._call = call

    def sendMessage(self, message):
        self._call.sendMessage(message)

    def finish(self, error=None):
        if error is not None and not isinstance(error, GRPCError):
            error = grpcError(error) if isinstance(error, EtcdError) else error
        self._call.finish(error)

    def registerProducer(self, producer, streaming):
        self._call.registerProducer(producer, streaming)

    def unregisterProducer(self):
        self._call.unregisterProducer()

    def pauseProducing(self):
        self._call.pauseProducing()

    def resumeProducing(self):
        self._call.resumeProducing()

    def stopProducing(self):
        self._call.cancel()


class _Binding:
    """The bound rpcs of one etcd service."""

    def __init__(self, service, guard):
        self._service = service
        self._guard = guard

    def _requireLeader(self, call):
        if call.metadataValue(REQUIRE_LEADER) == "true":
            try:
                self._guard.requireLeader()
            except EtcdError as e:
                raise grpcError(e)

    def unary(self, name):
        f = getattr(self._service, name)

        def rpc(request, call):
            self._requireLeader(call)
            try:
                d = f(request)
            except EtcdError as e:
                raise grpcError(e)
            return d.addErrback(_translate)
        rpc.__name__ = name
        return rpc

    def serverStreaming(self, name):
        f = getattr(self._service, name)

        def rpc(request, call):
            self._requireLeader(call)
            return f(request, _Responder(call))
        rpc.__name__ = name
        return rpc

    def clientStreaming(self, name):
        f = getattr(self._service, name)

        def rpc(call):
            self._requireLeader(call)
            return f(_Responder(call))
        rpc.__name__ = name
        return rpc


def etcdServices(api):
    """The ``Service``s serving ``api`` (an ``EtcdAPI``), one per etcd service."""
    guard = Guard(api.node)
    byService: dict[str, list[Method]] = {}
    for method in METHODS.values():
        byService.setdefault(method.service, []).append(method)
    services = []
    for name, methods in sorted(byService.items()):
        target = api.services.get(name)
        if target is None:
            continue
        binding = _Binding(target, guard)
        impl = SimpleNamespace()
        for m in methods:
            if getattr(target, m.name, None) is None:
                continue
            if m.clientStreaming:
                rpc = binding.clientStreaming(m.name)
            elif m.serverStreaming:
                rpc = binding.serverStreaming(m.name)
            else:
                rpc = binding.unary(m.name)
            setattr(impl, m.name, rpc)
        services.append(Service.fromMethods(name, methods, impl))
    return services


def etcdGRPCServer(api, maxReceiveMessageSize=None, health=None, leaderInterval=1.0):
    """
    A ``GRPCServer`` serving ``api``'s six services (and Health).  The
    largest request message defaults to etcd's: ``--max-request-bytes``
    plus 512 KiB of gRPC overhead (``api.proposer.maxRequestBytes``).
    The server as a whole (Health's ``""``) is SERVING while the member
    knows a leader and NOT_SERVING otherwise (read at each Check, polled
    every ``leaderInterval`` seconds while someone watches); a ``health``
    given is the caller's to track (a node's also says NOT_SERVING once it
    was removed).
    """
    if maxReceiveMessageSize is None:
        maxReceiveMessageSize = api.proposer.maxRequestBytes + 512 * 1024
    tracked = health is None
    server = GRPCServer(etcdServices(api), maxReceiveMessageSize=maxReceiveMessageSize,
                        health=health)
    if tracked:
        node = api.node
        server.health.track(
            "", lambda: HealthServicer.SERVING if node.leader() else HealthServicer.NOT_SERVING,
            api.clock, leaderInterval)
    return server


_HEALTH_PREFIX = ("/%s/" % (HEALTH.full_name,)).encode("ascii")


def _unavailable(stream):
    """Trailers-only UNAVAILABLE: the member has no etcd API yet (gRPC clients retry)."""
    block = [(b"content-type", b"application/grpc")]
    block.extend(statusHeaders(Code.UNAVAILABLE, "etcdserver: the member has not started yet"))
    stream.respond(200, block)


@implementer(IH2Router)
class EtcdGRPCRouter:
    """
    The ``IH2Router`` of a member's gRPC port: etcd's six services over
    ``getAPI()`` (an ``EtcdAPI`` or None), asked per request, and
    ``health`` (a ``HealthServicer``, whose statuses the caller tracks).
    The ``GRPCServer`` over an API is built the first time a request finds
    it.  Not gRPC: 415, as grpc-go answers.
    """

    def __init__(self, getAPI, health):
        self._getAPI = getAPI
        self.health = health
        self._api = None
        self._server = None
        self._healthOnly = GRPCServer(health=health)
        self._notStarted = HandlerFactory(_unavailable)
        self._notGRPC = StatusResponse(
            415, [(b"content-type", b"text/plain; charset=utf-8")],
            b"invalid gRPC request content-type\n")

    def server(self):
        """The ``GRPCServer`` over the current API (None until there is one)."""
        api = self._getAPI()
        if api is None:
            return None
        if api is not self._api:
            self._api = api
            self._server = etcdGRPCServer(api, health=self.health)
        return self._server

    def route(self, request):
        if not isGRPCContentType(request.header(b"content-type")):
            return self._notGRPC
        server = self.server()
        if server is not None:
            return server
        if (request.path or b"").startswith(_HEALTH_PREFIX):
            return self._healthOnly
        return self._notStarted
