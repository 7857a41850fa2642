"""
Fuzz targets for gossip: ckit's frame codec, and the HTTP/2 server that
serves ``/api/v1/ckit/transport/{message,stream}`` over a StringTransport.
"""

from prometheus_client import CollectorRegistry

from raftmux.fuzz import target
from raftmux.fuzz._support import LogFailures, check, pieces, runClock, split
from raftmux.gossip.framing import (
    FrameDecoder,
    FramingError,
    decodeAll,
    encodeFrame,
    frameHeader,
)

MAX_FRAME = 4096


@target("gossip-framing", """
    FrameDecoder (0xCC/0xCD + length): only FramingError; a declared length
    over the maximum refused before its payload; never more than one frame
    buffered; any chunking gives the same payloads (and an error keeps those
    before it); payloads re-encode and decode to themselves.""",
        seeds=lambda: [b"\x00" + encodeFrame(b"hello"), b"\x01" + encodeFrame(b"") * 3,
                       b"\x05" + frameHeader(70000)[:1] + b"\x00\x00\x00\x08" + b"8 bytes!",
                       b"\x00" + encodeFrame(b"a" * 300) + encodeFrame(b"b")])
def gossipFraming(data):
    control, wire = split(data)

    def decode(chunks):
        decoder = FrameDecoder(MAX_FRAME)
        out = []
        error = None
        try:
            for chunk in chunks:
                out += decoder.feed(chunk)
                check(decoder.buffered <= 5 + MAX_FRAME,
                      "decoder holds %d bytes (max frame %d)", decoder.buffered, MAX_FRAME)
            decoder.end()
        except FramingError as e:
            out += e.decoded
            error = type(e)
            try:
                decoder.feed(b"\xcc\x00\x00")
            except FramingError:
                pass
            else:
                raise AssertionError("a dead decoder decoded again")
        return out, error

    whole = decode([wire])
    chunked = decode(pieces(wire, control))
    check(whole == chunked, "chunking changed the outcome")
    payloads = whole[0]
    for p in payloads:
        check(len(p) <= MAX_FRAME, "a %d-byte payload passed a %d-byte limit", len(p), MAX_FRAME)
    if payloads:
        again = decodeAll(b"".join(encodeFrame(p) for p in payloads), MAX_FRAME)
        check(again == payloads, "round trip changed the payloads")


# -- the HTTP/2 server --------------------------------------------------------------

_registry = CollectorRegistry()
_gossip = []


def _transport():
    """One GossipTransport for every input (its metrics register once)."""
    if not _gossip:
        from twisted.internet.testing import MemoryReactorClock

        from raftmux.gossip import GossipTransport

        clock = MemoryReactorClock()
        received = []
        streams = []
        gossip = GossipTransport(clock, "127.0.0.1:7946",
                                 onPacket=lambda data, addr, ts: received.append(data),
                                 onStream=streams.append, registry=_registry,
                                 maxFrameSize=MAX_FRAME)
        _gossip.append((gossip, clock, received, streams))
    return _gossip[0]


def _h2Request(path, contentType, body=b"", endStream=True):
    import h2.config
    import h2.connection

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "POST"), (":path", path), (":scheme", "http"),
                          (":authority", "127.0.0.1:7946"), ("content-type", contentType)],
                      end_stream=not body and endStream)
    if body:
        conn.send_data(1, body, end_stream=endStream)
    return conn.data_to_send()


def _gossipSeeds():
    message = "/api/v1/ckit/transport/message"
    stream = "/api/v1/ckit/transport/stream"
    return [
        b"\x00" + _h2Request(message, "application/x.ckit", encodeFrame(b"ping") * 2),
        b"\x03" + _h2Request(stream, "application/x.ckit", encodeFrame(b"hello"), False),
        b"\x00" + _h2Request(message, "text/plain", b"x"),
        b"\x00" + _h2Request("/nowhere", "application/x.ckit"),
        b"\x00" + b"POST /api/v1/ckit/transport/message HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x07" + _h2Request(message, "application/x.ckit", b"\xcd\x00\x10\x00\x00abc"),
    ]


@target("gossip-h2-server", """
    The gossip HTTP/2 server (h2c, or HTTP/1.x answered 505) over a
    StringTransport: nothing raised out of dataReceived, no error logged;
    no packet over maxFrameSize reaches onPacket; bytes held for partial
    frames never pass the connection's bound.""", seeds=_gossipSeeds)
def gossipH2Server(data):
    from twisted.internet.address import IPv4Address
    from twisted.internet.error import ConnectionDone
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure

    gossip, clock, received, streams = _transport()
    control, wire = split(data)
    del received[:]
    del streams[:]
    factory = gossip.serverFactory()
    proto = factory.buildProtocol(IPv4Address("TCP", "192.0.2.9", 5555))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.9", 5555))
    with LogFailures():
        proto.makeConnection(transport)
        for chunk in pieces(wire, control):
            if transport.disconnecting:
                break
            proto.dataReceived(chunk)
            held, bound = getattr(proto, "held", 0), getattr(proto, "maxHeld", 0)
            check(held <= bound or not bound, "%d bytes held (bound %d)", held, bound)
            runClock(clock, 0.01)
        for stream in streams:
            stream.loseConnection()
        proto.connectionLost(Failure(ConnectionDone()))
        runClock(clock, 1)
    for packet in received:
        check(len(packet) <= MAX_FRAME, "a %d-byte packet passed the %d-byte limit",
              len(packet), MAX_FRAME)
