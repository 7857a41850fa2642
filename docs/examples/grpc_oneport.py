"""
gRPC and HTTP/1.1 on one port, as etcd serves them with cmux.

    python docs/examples/grpc_oneport.py            # serve, call, print, exit
    python docs/examples/grpc_oneport.py --serve    # keep serving (Ctrl-C stops)

The server is etcd's v3 API (``raftmux.etcd.EtcdAPI``) on the in-memory
one-member node of ``raftmux.etcd.testing``, served over gRPC by
``raftmux.grpc``, behind a ``raftmux.sniff`` sniffer that also answers
HTTP/1.1 on the same port.  The client part uses raftmux's own gRPC client:
a Put, a Range, a Watch that sees a second Put, a Health check, and an
error from etcd.  With ``--serve`` it prints the port and waits, so that
``etcdctl --endpoints=http://127.0.0.1:PORT put k v`` or ``curl
http://127.0.0.1:PORT/`` can be pointed at it.
"""

import sys

from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.server import Site
from twisted.web.static import Data

from raftmux.etcd import EtcdAPI
from raftmux.etcd.testing import FakeEtcdNode
from raftmux.etcdpb import SERVICES
from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.grpc import GRPCClient, GRPCError
from raftmux.grpc.etcd import etcdGRPCServer
from raftmux.grpcpb import HEALTH, health_pb2
from raftmux.sniff import SniffingFactory, http1, http2HeaderField


async def serve(reactor):
    """Listen on a free loopback port; returns (port, the gRPC server factory)."""
    node = FakeEtcdNode(reactor)
    api = EtcdAPI(node, reactor)
    api.startService()
    reactor.addSystemEventTrigger("before", "shutdown", api.stopService)
    grpcFactory = etcdGRPCServer(api).serverFactory()
    site = Site(Data(b"plain HTTP/1.1 on the gRPC port\n", "text/plain"))
    onePort = SniffingFactory([
        # etcd's cmux rule, greeting first: gRPC clients wait for the server's SETTINGS
        (http2HeaderField(b"content-type", b"application/grpc", valuePrefix=True,
                          sendSettings=True), grpcFactory),
        (http1(), site),
    ])
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(onePort)
    return port, grpcFactory


async def calls(reactor, target):
    client = GRPCClient(reactor, target)
    kv = client.stub(SERVICES["etcdserverpb.KV"])
    watch = client.stub(SERVICES["etcdserverpb.Watch"]).Watch()
    try:
        put = await kv.Put(pb.PutRequest(key=b"greeting", value=b"hello"), timeout=5)
        print("put: revision", put.header.revision)
        got = await kv.Range(pb.RangeRequest(key=b"greeting"), timeout=5)
        print("range:", [(kv.key.decode(), kv.value.decode()) for kv in got.kvs])

        watch.sendMessage(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"greeting")))
        created = await watch.receive()
        print("watch: created", created.created)
        await kv.Put(pb.PutRequest(key=b"greeting", value=b"hello again"), timeout=5)
        event = await watch.receive()
        print("watch: saw", [e.kv.value.decode() for e in event.events])

        health = await client.stub(HEALTH).Check(health_pb2.HealthCheckRequest(), timeout=5)
        print("health:", health_pb2.HealthCheckResponse.ServingStatus.Name(health.status))
        try:
            await kv.Put(pb.PutRequest(value=b"no key"), timeout=5)
        except GRPCError as e:
            print("error:", e.code.name, e.message)
    finally:
        watch.cancel()
        await client.close()


async def main(reactor, *args):
    port, grpcFactory = await serve(reactor)
    target = "http://127.0.0.1:%d" % (port.getHost().port,)
    if "--serve" in args:
        print("serving gRPC and HTTP/1.1 on", target, flush=True)
        await defer.Deferred()     # until Ctrl-C
    try:
        await calls(reactor, target)
    finally:
        await grpcFactory.shutdown()
        await port.stopListening()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, *sys.argv[1:])))
