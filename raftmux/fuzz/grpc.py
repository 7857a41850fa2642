"""
Fuzz targets for gRPC (``raftmux.grpc``): the length-prefixed message
decoder (and a call's use of it), and the gRPC server on the HTTP/2 shell,
serving etcd's services over the fake single-member node of
``raftmux.etcd.testing`` and Health, fed any frames after a valid client
preface and SETTINGS.
"""

import struct
from types import SimpleNamespace

from raftmux.fuzz import InvariantBroken, target
from raftmux.fuzz._support import LogFailures, check, pieces, runClock, split
from raftmux.fuzz.http2 import PREFACE, FrameReader, clientFrames, frame
from raftmux.grpc.status import GRPCError
from raftmux.grpc.wire import PREFIX_SIZE, MessageDecoder, encodeMessage

MAX_MESSAGE = 1024


def _messageSeeds():
    from raftmux.grpcpb import health_pb2

    check = health_pb2.HealthCheckRequest(service="etcdserverpb.KV").SerializeToString()
    return [
        b"\x00" + encodeMessage(check),
        b"\x01" + encodeMessage(b"") * 3 + encodeMessage(check),
        b"\x05" + encodeMessage(b"a" * 300) + encodeMessage(b"\x0a\x01b"),
        b"\x00" + struct.pack(">BI", 0, MAX_MESSAGE + 1) + b"too long",
        b"\x02" + struct.pack(">BI", 1, 3) + b"gz!",
        b"\x03" + struct.pack(">BI", 7, 0),
        b"\x00" + encodeMessage(b"\xff\xff\xff"),
        b"\x09" + encodeMessage(check)[:-2],
    ]


@target("grpc-messages", """
    MessageDecoder (flag + 4-byte length): only GRPCError; a length over
    the maximum refused from its prefix; never more than one message's
    bytes kept; any chunking gives the same messages, the same error and
    the same end state; messages re-encode and decode to themselves.  A
    call's decodeMessages (its one-piece fast path and the decoder) gives
    the same messages or the same status whatever the chunking.""",
        seeds=_messageSeeds)
def grpcMessages(data):
    control, wire = split(data)

    def decode(chunks):
        decoder = MessageDecoder(MAX_MESSAGE)
        out = []
        error = None
        try:
            for chunk in chunks:
                out += decoder.feed(chunk)
                check(decoder.buffered <= max(PREFIX_SIZE - 1, MAX_MESSAGE),
                      "decoder holds %d bytes (max message %d)", decoder.buffered, MAX_MESSAGE)
        except GRPCError as e:
            out += getattr(e, "decoded", [])
            error = (e.code, e.message)
            check(decoder.buffered == 0, "a dead decoder holds %d bytes", decoder.buffered)
            try:
                decoder.feed(encodeMessage(b""))
            except GRPCError:
                pass
            else:
                raise InvariantBroken("a dead decoder decoded again")
        return out, error, decoder.atBoundary if error is None else None

    whole = decode([wire] if wire else [])
    chunked = decode(pieces(wire, control))
    check(whole == chunked, "chunking changed the outcome: %r / %r", whole[1:], chunked[1:])
    messages = whole[0]
    for _flag, payload in messages:
        check(len(payload) <= MAX_MESSAGE, "a %d-byte message passed a %d-byte limit",
              len(payload), MAX_MESSAGE)
    plain = [p for f, p in messages if f == 0]
    if plain and len(plain) == len(messages):
        again = MessageDecoder(MAX_MESSAGE).feed(b"".join(encodeMessage(p) for p in plain))
        check(again == messages, "round trip changed the messages")
    whole = _callDecode([wire] if wire else [])
    chunked = _callDecode(pieces(wire, control))
    check(whole == chunked, "a call's decoding depends on the chunking: %r / %r",
          whole, chunked)


def _callDecode(chunks):
    """A server call's view: the messages parsed (or the first status), and bytes held."""
    from raftmux.grpc._call import CallBase
    from raftmux.grpcpb import health_pb2

    held = [0]

    def holdBytes(delta):
        held[0] += delta
        return held[0] <= MAX_MESSAGE

    call = CallBase(health_pb2.HealthCheckRequest, MAX_MESSAGE)
    call.transport = SimpleNamespace(host=SimpleNamespace(holdBytes=holdBytes))
    out: list[bytes] = []
    try:
        for chunk in chunks:
            out.extend(m.SerializeToString() for m in call.decodeMessages(chunk))
            check(held[0] <= MAX_MESSAGE, "a call holds %d bytes", held[0])
    except GRPCError as e:
        call.releaseHeld()
        check(held[0] == 0, "%d bytes still held after the call ended", held[0])
        return None, e.code
    partial = call.partialMessage
    call.releaseHeld()
    check(held[0] == 0, "%d bytes still held after the call ended", held[0])
    return out, partial


# -- the server ----------------------------------------------------------------------------

SERVER_MAX_MESSAGE = 8192
T0 = 1700000000.0


def _serverConfig(control):
    from raftmux.grpc.server import DEFAULT_CONFIG

    return DEFAULT_CONFIG.replace(
        maxConcurrentStreams=16, initialWindowSize=16384, connectionWindowSize=65535,
        maxHeaderListSize=8192, maxHeldBytes=16384, maxDiscard=4096, resetBurst=20,
        resetRate=10.0, pingInterval=5.0, pingTimeout=2.0, idleTimeout=30.0,
        shutdownTimeout=5.0, eventsPerTurn=3 if control & 0x40 else None)


def _grpcHeaders(path, extra=(), method=b"POST", contentType=b"application/grpc"):
    return [(b":method", method), (b":scheme", b"http"), (b":authority", b"fuzz.test"),
            (b":path", path), (b"content-type", contentType), (b"te", b"trailers")] + list(extra)


def _call(path, *messages, end=True, extra=(), **kw):
    body = b"".join(encodeMessage(m.SerializeToString()) if hasattr(m, "SerializeToString")
                    else m for m in messages)
    return (_grpcHeaders(path, extra, **kw), body if messages else None, end)


def _serverSeeds():
    from raftmux.etcdpb import rpc_pb2 as pb
    from raftmux.grpcpb import health_pb2

    kv = "/etcdserverpb.KV/"
    health = b"/grpc.health.v1.Health/"
    txn = pb.TxnRequest(
        compare=[pb.Compare(key=b"k", target=pb.Compare.VALUE, value=b"v")],
        success=[pb.RequestOp(request_put=pb.PutRequest(key=b"k", value=b"w"))],
        failure=[pb.RequestOp(request_range=pb.RangeRequest(key=b"k"))])
    watch = pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"k", range_end=b"l"))
    requests = [
        [_call(health + b"Check", health_pb2.HealthCheckRequest())],
        [_call((kv + "Put").encode(), pb.PutRequest(key=b"k", value=b"v")),
         _call((kv + "Range").encode(), pb.RangeRequest(key=b"k", range_end=b"\x00"))],
        [_call((kv + "Txn").encode(), txn),
         _call((kv + "DeleteRange").encode(), pb.DeleteRangeRequest(key=b"k")),
         _call((kv + "Compact").encode(), pb.CompactionRequest(revision=1))],
        [_call(b"/etcdserverpb.Watch/Watch", watch, end=False)],
        [_call(b"/etcdserverpb.Lease/LeaseGrant", pb.LeaseGrantRequest(TTL=5)),
         _call(b"/etcdserverpb.Lease/LeaseKeepAlive", pb.LeaseKeepAliveRequest(ID=1), end=False)],
        [_call(b"/etcdserverpb.KV/Nope", b""), _call(b"/no.Such/Service", b""),
         _call(health + b"Check", b"", method=b"GET"),
         _call(health + b"Check", b"", contentType=b"text/plain")],
        [_call(health + b"Check", health_pb2.HealthCheckRequest(),
               extra=[(b"grpc-timeout", b"99x")]),
         _call(health + b"Watch", health_pb2.HealthCheckRequest(), end=False,
               extra=[(b"grpc-timeout", b"100m")])],
        [_call(health + b"Check", struct.pack(">BI", 0, 1 << 20)),
         _call(health + b"Check", struct.pack(">BI", 1, 2) + b"gz"),
         _call(health + b"Check", encodeMessage(b"\x0a\x05ab")[:-1])],
        [_call(health + b"Check", health_pb2.HealthCheckRequest(),
               health_pb2.HealthCheckRequest())],
        [_call((kv + "Range").encode(), pb.RangeRequest(key=b"k"),
               extra=[(b"hasleader", b"true"), (b"token-bin", b"!!not base64")])],
        [_call(b"/etcdserverpb.Maintenance/Status", pb.StatusRequest()),
         _call(b"/etcdserverpb.Cluster/MemberList", pb.MemberListRequest())],
    ]
    seeds = [b"\x00" + clientFrames(r, preface=False) for r in requests]
    put = clientFrames([_call((kv + "Put").encode(), pb.PutRequest(key=b"k" * 9, value=b"v" * 500))],
                       preface=False)
    seeds.append(b"\x01" + put)
    seeds.append(b"\x40" + clientFrames(requests[1] * 3, preface=False))
    seeds.append(b"\x00" + clientFrames(requests[3], preface=False)
                 + frame(0x3, 0, 1, struct.pack(">I", 8)))
    seeds.append(b"\x00" + clientFrames(requests[3], preface=False)
                 + frame(0x7, 0, 0, struct.pack(">II", 1, 0)))
    return seeds


def _server(clock, control):
    from twisted.internet.address import IPv4Address

    from raftmux.etcd.api import EtcdAPI
    from raftmux.etcd.testing import FakeEtcdNode
    from raftmux.grpc.etcd import etcdGRPCServer

    node = FakeEtcdNode(clock)
    api = EtcdAPI(node, clock)
    api.startService()
    server = etcdGRPCServer(api, maxReceiveMessageSize=SERVER_MAX_MESSAGE)
    config = _serverConfig(control)
    factory = server.serverFactory(config, clock=clock)
    proto = factory.buildProtocol(IPv4Address("TCP", "192.0.2.5", 2379))
    return api, config, proto


@target("grpc-server", """
    The gRPC server on the HTTP/2 shell (etcd's services on a fake node,
    and Health) fed any frames after a valid client preface and SETTINGS:
    nothing raised, no error logged (a handler's traceback included);
    bytes held for partial messages within maxHeldBytes and released when
    the connection goes; the clock is never kept busy; what it writes
    parses as HTTP/2 frames whose header blocks hpack decodes, and every
    gRPC answer (:status 200, application/grpc) the server ended carries a
    grpc-status: a malformed call gets an HTTP/2 error or a gRPC status.""",
        seeds=_serverSeeds)
def grpcServer(data):
    from twisted.internet.address import IPv4Address
    from twisted.internet.error import ConnectionDone
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure

    from raftmux.fuzz.http2 import checkServerBounds

    control, wire = split(data)
    clock = Clock()
    clock.advance(T0)
    reader = FrameReader(preface=False, clientSide=False)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.5", 2379))
    with LogFailures():
        api, config, proto = _server(clock, control)
        proto.makeConnection(transport)
        proto.dataReceived(PREFACE + frame(0x4, 0, 0))
        for chunk in pieces(wire, control):
            if proto.closed or transport.disconnecting:
                break
            proto.dataReceived(chunk)
            checkServerBounds(proto, config)
            check(runClock(clock, 0.01), "the server keeps the clock busy")
            reader.feed(transport.value())
            transport.clear()
        check(runClock(clock, 60), "the server keeps the clock busy")
        reader.feed(transport.value())
        transport.clear()
        proto.connectionLost(Failure(ConnectionDone()))
        check(runClock(clock, 1), "the server keeps the clock busy")
        api.stopService()
        check(runClock(clock, 1), "the server keeps the clock busy")
    reader.feed(transport.value())
    reader.finish()
    check(not proto.streams, "streams left after the connection was lost")
    check(proto.held == 0, "%d bytes still held after the connection went", proto.held)
    for sid in reader.ended:
        blocks = reader.blocks.get(sid)
        if not blocks:
            raise InvariantBroken("stream %d ended without a header block" % (sid,))
        first = dict(blocks[0])
        if first.get(b":status") != b"200" or not (first.get(b"content-type") or b"") \
                .startswith(b"application/grpc"):
            continue
        last = dict(blocks[-1])
        status = last.get(b"grpc-status")
        check(status is not None and status.isdigit(),
              "stream %d: a gRPC answer ended without a grpc-status: %r", sid, blocks)
