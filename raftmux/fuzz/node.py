"""
Fuzz targets for the node: its state machine's log entries and snapshots,
the member context of conf changes, and the node's listening port (the
sniffer with every route a node serves: HTTP/1.1 and h2c to a twisted.web
Site, gossip's HTTP/2 server, muxado sessions carrying HTTP/1.1).
"""

import struct

from prometheus_client import CollectorRegistry

from raftmux.fuzz import target
from raftmux.fuzz._support import LogFailures, check, pieces, runClock, split
from raftmux.node.kv import (
    CommandError,
    KVStateMachine,
    encodeAttributes,
    encodeDelete,
    encodePut,
)
from raftmux.node.members import memberContext, parseMemberContext

_u16 = struct.Struct(">H")


def _entries(program):
    out = []
    pos = 0
    while pos < len(program):
        (n,) = _u16.unpack(program[pos:pos + 2].ljust(2, b"\x00"))
        out.append(program[pos + 2:pos + 2 + n])
        pos += 2 + n
    return out


def _kvSeeds():
    entries = [encodePut(b"k", b"v"), encodePut(b"", b"x" * 10), encodeDelete(b"k"),
               encodeAttributes(0x8E9E05C52164694D, "n1", ["http://127.0.0.1:2379"]),
               b"\x08\x01", memberContext(5, ["http://127.0.0.1:2380"], "n5"),
               b"RMKVA" + bytes(8) + b"[" * 40 + b"]" * 40, b"[" * 40]
    program = b"".join(_u16.pack(len(e)) + e for e in entries)
    sm = KVStateMachine()
    for e in entries[:4]:
        sm.apply(e)
    snapshot = sm.snapshot([{"id": 1, "name": "n1", "peerURLs": ["http://127.0.0.1:2380"]}])
    return [b"\x00" + program, b"\x01" + snapshot, b"\x01" + snapshot[:20]]


@target("node-kv", """
    The node's state machine: applying any log entries never raises (damaged
    commands of ours and foreign entries are skipped); a snapshot restores
    to the same state; restore of any bytes raises only CommandError; a
    conf change's member context parses to a value or None, never raises.""",
        seeds=_kvSeeds)
def nodeKV(data):
    control, program = split(data)
    if control & 1:
        sm = KVStateMachine()
        try:
            members = sm.restore(program)
        except CommandError:
            return
        if members is None:
            return
        check(isinstance(members, list), "restore gave members %r", members)
        again = KVStateMachine()
        try:
            again.restore(sm.snapshot([]))
        except CommandError as e:
            raise AssertionError("our own snapshot does not restore: %s" % (e,))
        check((again.data, again.attributes) == (sm.data, sm.attributes),
              "snapshot round trip changed the state")
        return
    sm = KVStateMachine()
    for entry in _entries(program):
        sm.apply(entry)
        parseMemberContext(entry)
    other = KVStateMachine()
    other.restore(sm.snapshot([]))
    check((other.data, other.attributes, other.foreign) == (sm.data, sm.attributes, sm.foreign),
          "snapshot round trip changed the state")


# -- the node's port -----------------------------------------------------------------

_registry = CollectorRegistry()
_port = []


def _portFactory():
    """The node's routes (as ``RaftNode._routes``) around a small Site; built once."""
    if not _port:
        from twisted.internet.testing import MemoryReactorClock
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        from raftmux.gossip import GossipTransport
        from raftmux.muxado import MuxadoConfig, MuxadoServerFactory
        from raftmux.sniff import SniffingFactory, http1, http2, http2HeaderField, muxado

        class Echo(Resource):
            isLeaf = True

            def render(self, request):
                return request.content.read()[:1024] + request.uri

        root = Resource()
        root.putChild(b"echo", Echo())
        clock = MemoryReactorClock()
        site = Site(root, reactor=clock)
        site.log = lambda request: None
        gossip = GossipTransport(clock, "127.0.0.1:2380", onPacket=lambda *a: None,
                                 onStream=lambda stream: stream.loseConnection(),
                                 registry=_registry)
        sessions = MuxadoServerFactory(site, config=MuxadoConfig(version=None,
                                                                 maxIncomingStreams=8),
                                       reactor=clock, registry=_registry)
        routes = [
            (http2HeaderField(b"content-type", b"application/x.ckit"),
             gossip.serverFactory(), "gossip"),
            (http2(), site, "h2c"),
            (http1(), site, "http1"),
            (muxado(), sessions, "muxado"),
        ]
        factory = SniffingFactory(routes, clock=clock, registry=_registry, name="fuzz-node")
        factory.doStart()
        _port.append((factory, clock))
    return _port[0]


def _portSeeds():
    from raftmux.fuzz.gossip import _gossipSeeds
    from raftmux.fuzz.sniff import h2ClientBytes

    http = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    stream = http
    muxadoV2 = (bytes.fromhex("00") + len(stream).to_bytes(2, "big") + b"\x12" + b"\x00\x00\x00\x01"
                + stream)
    muxadoV1 = (bytes.fromhex("0000000100000003") + len(stream).to_bytes(2, "big") + b"\x00\x03"
                + b"\x00\x00\x00\x03" + stream)
    return [b"\x00" + http, b"\x01" + b"GET /echo?x HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\x00" + h2ClientBytes(), b"\x00" + muxadoV2, b"\x05" + muxadoV1] + _gossipSeeds()[:2]


@target("node-port", """
    The node's listening port (sniffer -> HTTP/1.1 and h2c into a Site,
    gossip's HTTP/2 server, muxado sessions whose streams carry HTTP/1.1)
    over a StringTransport: nothing raised, no error logged, and the
    connection is either served, closed, or still within the sniff limits.""",
        seeds=_portSeeds)
def nodePort(data):
    from twisted.internet.address import IPv4Address
    from twisted.internet.error import ConnectionDone
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure

    factory, clock = _portFactory()
    control, wire = split(data)
    peer = IPv4Address("TCP", "192.0.2.3", 4321)
    with LogFailures():
        proto = factory.buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        transport.protocol = proto
        proto.makeConnection(transport)
        for chunk in pieces(wire, control):
            if transport.disconnecting:
                break
            transport.protocol.dataReceived(chunk)
            runClock(clock, 0.001)
        transport.protocol.connectionLost(Failure(ConnectionDone()))
        runClock(clock, 20)
    check(factory.sniffing == 0, "a closed connection is still being sniffed")
