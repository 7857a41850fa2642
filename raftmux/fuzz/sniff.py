"""
Fuzz targets for the sniffer: the sans-IO matchers, and the
``SniffingFactory`` shell over a StringTransport with a clock.
"""

from prometheus_client import CollectorRegistry

from raftmux.fuzz import target
from raftmux.fuzz._support import LogFailures, check, pieces, runClock, split
from raftmux.sniff import (
    MATCH,
    NEED_MORE,
    NO_MATCH,
    anyBytes,
    http1,
    http1HeaderField,
    http2,
    http2HeaderField,
    muxado,
    prefix,
    tls,
)

HTTP1_REQUEST = b"GET /v2/members HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n"
MUXADO_V2_SYN = bytes.fromhex("000005130000000168656c6c6f")
MUXADO_V1_SYN = bytes.fromhex("0008070100000003 7fffffff fffffeff".replace(" ", ""))


def h2ClientBytes(contentType="application/grpc+proto"):
    """What an h2 client sends first: preface, SETTINGS, HEADERS (made by ``h2``)."""
    import h2.config
    import h2.connection

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "POST"), (":path", "/pkg.Service/Call"),
                          (":scheme", "http"), (":authority", "127.0.0.1"),
                          ("content-type", contentType)], end_stream=True)
    return conn.data_to_send()


def clientHello(serverName=b"node1.raft", alpn=(b"h2", b"http/1.1")):
    """
    A TLS 1.3 ClientHello with SNI and ALPN, built byte by byte so the seed
    is the same on every run (OpenSSL's has a fresh random and key share).
    """
    def vector(data, width):
        return len(data).to_bytes(width, "big") + data

    def extension(kind, body):
        return kind.to_bytes(2, "big") + vector(body, 2)

    names = vector(b"\x00" + vector(serverName, 2), 2)
    protocols = vector(b"".join(vector(p, 1) for p in alpn), 2)
    extensions = (extension(0, names) + extension(16, protocols)
                  + extension(43, vector(b"\x03\x04", 1))
                  + extension(10, vector(b"\x00\x1d", 2))
                  + extension(13, vector(b"\x04\x03", 2))
                  + extension(51, vector(b"\x00\x1d" + vector(b"\x11" * 32, 2), 2)))
    body = (b"\x03\x03" + b"\x5a" * 32 + vector(b"\x22" * 32, 1)
            + vector(b"\x13\x01\x13\x02", 2) + vector(b"\x00", 1) + vector(extensions, 2))
    handshake = b"\x01" + vector(body, 3)
    return b"\x16\x03\x01" + vector(handshake, 2)


def examples():
    return [HTTP1_REQUEST, h2ClientBytes(), h2ClientBytes("application/x.ckit"),
            clientHello(), MUXADO_V2_SYN, MUXADO_V1_SYN, b"RAFT\x00", b"MUX\x00hello"]


def allMatchers():
    return [
        anyBytes(), prefix(b"MUX\x00", b"RAFT"), http1(), http1HeaderField("Upgrade", "websocket"),
        http2(), http2HeaderField("content-type", "application/grpc", valuePrefix=True),
        http2HeaderField("content-type", "x", sendSettings=True), tls(),
        tls(serverNames=["node1.raft"], alpn=[b"h2"]), tls(validate=False), muxado(),
        muxado(maxLength=0x1000000),
    ]


_MATCHERS = allMatchers()
_PROTOCOLS = {"http1": http1(), "http2": http2(), "tls": tls(), "muxado": muxado()}


@target("sniff-matchers", """
    Every matcher answers MATCH, NO_MATCH or NEED_MORE on any bytes, never
    raises; a decision stays when more bytes come; a first byte outside
    firstBytes is NO_MATCH; http1, http2, tls and muxado never both match.""",
        seeds=lambda: [bytes([min(len(e) // 2, 255)]) + e for e in examples()])
def sniffMatchers(data):
    control, wire = split(data)
    cut = min(control, len(wire))
    head = wire[:cut]
    for m in _MATCHERS:
        for sample in (head, wire):
            result = m.match(sample)
            check(result is MATCH or result is NO_MATCH or result is NEED_MORE,
                  "%r answered %r", m, result)
            greeting = m.greeting(sample)
            check(isinstance(greeting, bytes), "%r greeted with %r", m, greeting)
        first = m.match(head)
        if first is not NEED_MORE:
            check(m.match(wire) is first, "%r changed its mind: %r on %d bytes, then %r",
                  m, first, len(head), m.match(wire))
        if wire and m.firstBytes is not None and wire[0] not in m.firstBytes:
            check(m.match(wire) is NO_MATCH, "%r matched a first byte outside firstBytes", m)
    matched = [name for name, m in _PROTOCOLS.items() if m.match(wire) is MATCH]
    check(len(matched) <= 1, "%s all match the same bytes", matched)


# -- the factory --------------------------------------------------------------------

_registry = CollectorRegistry()


def _factoryParts():
    from twisted.internet.protocol import Factory, Protocol

    class Recorder(Protocol):
        def __init__(self, label):
            self.label = label
            self.received = []
            self.lost = False

        def dataReceived(self, data):
            self.received.append(data)

        def connectionLost(self, reason):
            self.lost = True

    class RecordingFactory(Factory):
        def __init__(self, label):
            self.label = label
            self.built = []

        def buildProtocol(self, addr):
            p = Recorder(self.label)
            p.factory = self
            self.built.append(p)
            return p

    return RecordingFactory


_factories = {}


def _sniffer(variant):
    """
    The sniffer for one variant of the control byte (fallback route, greeting,
    byte cap), built once: building one costs more than a whole sniff.
    """
    if variant not in _factories:
        from twisted.internet.testing import MemoryReactorClock

        from raftmux.sniff import SniffingFactory

        RecordingFactory = _factoryParts()
        clock = MemoryReactorClock()
        routes = [
            (http2HeaderField(b"content-type", b"application/x.ckit"), RecordingFactory("gossip")),
            (http2HeaderField(b"content-type", b"application/grpc", valuePrefix=True,
                              sendSettings=bool(variant & 0x40)), RecordingFactory("grpc")),
            (http2(), RecordingFactory("h2c")),
            (http1(), RecordingFactory("http1")),
            (tls(), RecordingFactory("tls")),
            (muxado(), RecordingFactory("muxado")),
            (prefix(b"MUX\x00", b"RAFT"), RecordingFactory("prefix")),
        ]
        if variant & 0x80:
            routes.append((anyBytes(), RecordingFactory("any")))
        maxBytes = 64 if variant & 0x20 else 4096
        factory = SniffingFactory(routes, timeout=10, maxBytes=maxBytes, clock=clock,
                                  registry=_registry, name="fuzz-%d" % (variant,))
        factory.doStart()
        _factories[variant] = (factory, routes, clock, maxBytes)
    return _factories[variant]


@target("sniff-factory", """
    SniffingFactory over a StringTransport: nothing raised or logged as an
    error; a connection handed off is given exactly the bytes it sent (less
    the one SETTINGS ACK the greeting route removes), to a route whose matcher
    matches them; one still sniffing holds fewer than maxBytes; the deadline
    leaves none sniffing.""",
        seeds=lambda: [bytes([c]) + e for e in examples() for c in (0, 1, 0x85)])
def sniffFactory(data):
    from twisted.internet.address import IPv4Address
    from twisted.internet.error import ConnectionDone
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure

    control, wire = split(data)
    factory, routes, clock, maxBytes = _sniffer(control & 0xE0)
    for _, f in routes:
        del f.built[:]
    fed = b""
    with LogFailures():
        proto = factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 1234))
        transport = StringTransport()
        transport.protocol = proto
        proto.makeConnection(transport)
        for chunk in pieces(wire, control & 0x1F):
            if transport.disconnecting:
                break
            fed += chunk
            transport.protocol.dataReceived(chunk)
        if factory.sniffing:
            check(len(fed) < maxBytes, "still sniffing after %d bytes (maxBytes %d)",
                  len(fed), maxBytes)
        runClock(clock, 11)
        check(factory.sniffing == 0, "a connection is still sniffed past the deadline")
        transport.protocol.connectionLost(Failure(ConnectionDone()))
    chosen = [(matcher, f) for matcher, f in routes if f.built]
    check(len(chosen) <= 1, "more than one route took the connection")
    if chosen:
        matcher, f = chosen[0]
        [p] = f.built
        got = b"".join(p.received)
        check(p.lost, "the chosen protocol never heard of the connection's end")
        if transport.value():
            # The greeting route removed the client's ACK of our SETTINGS.
            check(len(fed) - len(got) in (0, 9) and got == _withoutAck(fed, got),
                  "the protocol got %d of %d bytes", len(got), len(fed))
        else:
            check(got == fed, "the protocol got %r, the client sent %r", got[:64], fed[:64])
            if matcher.maxBytes:
                check(matcher.match(fed) is MATCH, "%r took bytes it does not match", matcher)


def _withoutAck(fed, got):
    if len(fed) == len(got):
        return fed
    ack = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
    at = fed.find(ack)
    while at >= 0:
        if fed[:at] + fed[at + 9:] == got:
            return got
        at = fed.find(ack, at + 1)
    return None
