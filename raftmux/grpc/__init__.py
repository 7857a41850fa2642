"""
gRPC on raftmux's HTTP/2 shell (``raftmux.h2``): a server for protobuf
services described by descriptors (no generated stubs at runtime), the
standard health service on every server, a Twisted-native client, and
etcd's v3 API as gRPC services.  See ``docs/grpc.md``.

Server::

    server = GRPCServer([Service(descriptor, implementation)])
    endpoint.listen(server.serverFactory())       # gRPC only, h2c or ALPN h2
    # or behind a sniffer, beside HTTP/1.1 and other HTTP/2 routes:
    (http2HeaderField(b"content-type", b"application/grpc", valuePrefix=True,
                      sendSettings=True), server.serverFactory())

Client::

    client = GRPCClient(reactor, "http://127.0.0.1:2379")
    response = await client.stub(descriptor).Method(request, timeout=5)
"""

from raftmux.grpc.client import ClientCall, GRPCClient, Stub
from raftmux.grpc.health import HealthServicer
from raftmux.grpc.server import GRPCRouter, GRPCServer, ServerCall
from raftmux.grpc.service import Service
from raftmux.grpc.status import Code, GRPCError

__all__ = [
    "ClientCall",
    "Code",
    "GRPCClient",
    "GRPCError",
    "GRPCRouter",
    "GRPCServer",
    "HealthServicer",
    "ServerCall",
    "Service",
    "Stub",
]
