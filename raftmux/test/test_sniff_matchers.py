# -*- test-case-name: raftmux.test.test_sniff_matchers -*-
"""
The sans-IO matchers of ``raftmux.sniff``, synchronously and with
hypothesis: every answer on real client bytes, every early rejection, and
the properties the shell relies on (no exceptions, decisions that stay
decided, no two protocols claiming the same bytes).
"""

import h2.config
import h2.connection
from hpack import Encoder
from hypothesis import given, settings
from hypothesis import strategies as st
from OpenSSL import SSL
from twisted.trial.unittest import SynchronousTestCase

from raftmux.sniff import (
    MATCH,
    NEED_MORE,
    NO_MATCH,
    _h2,
    _tls,
    anyBytes,
    http1,
    http1HeaderField,
    http2,
    http2HeaderField,
    muxado,
    prefix,
    tls,
)

PREFACE = _h2.PREFACE


def h2ClientBytes(headers=None, endStream=True):
    """What an h2 client sends first: preface, SETTINGS, WINDOW_UPDATE?, HEADERS."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, headers or [
        (":method", "POST"), (":path", "/pkg.Service/Call"), (":scheme", "http"),
        (":authority", "127.0.0.1"), ("content-type", "application/grpc+proto"),
        ("te", "trailers")], end_stream=endStream)
    return conn.data_to_send()


def frame(frameType, flags, streamId, payload):
    return (len(payload).to_bytes(3, "big") + bytes([frameType, flags])
            + streamId.to_bytes(4, "big") + payload)


CLIENT_SETTINGS = frame(_h2.TYPE_SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00\x64")
SETTINGS_ACK = frame(_h2.TYPE_SETTINGS, _h2.FLAG_ACK, 0, b"")


def headerBlock(fields):
    return Encoder().encode(fields)


def clientHello(serverName=None, alpn=None):
    """A real ClientHello from OpenSSL, through a memory BIO."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if alpn:
        context.set_alpn_protos(alpn)
    connection = SSL.Connection(context, None)
    if serverName:
        connection.set_tlsext_host_name(serverName)
    connection.set_connect_state()
    try:
        connection.do_handshake()
    except SSL.WantReadError:
        pass
    return connection.bio_read(65536)


def record(helloBody):
    """A handshake record holding one ClientHello with this body."""
    handshake = b"\x01" + len(helloBody).to_bytes(3, "big") + helloBody
    return b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake


HTTP1_REQUEST = b"GET /v2/members HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n"
MUXADO_SYN = bytes.fromhex("000005130000000168656c6c6f")  # muxado.md vector a
HELLO = clientHello(b"node1.raft", [b"h2", b"http/1.1"])

EXAMPLES = {
    "http1": HTTP1_REQUEST,
    "http2": h2ClientBytes(),
    "tls": HELLO,
    "muxado": MUXADO_SYN,
}


def protocolMatchers():
    return {"http1": http1(), "http2": http2(), "tls": tls(), "muxado": muxado()}


def allMatchers():
    return [
        anyBytes(), prefix(b"MUX\x00", b"RAFT"), http1(), http1HeaderField("Upgrade", "websocket"),
        http2(), http2HeaderField("content-type", "application/grpc", valuePrefix=True),
        http2HeaderField("content-type", "x", sendSettings=True), tls(),
        tls(serverNames=["node1.raft"], alpn=[b"h2"]), tls(validate=False), muxado(),
    ]


class AnyAndPrefixTests(SynchronousTestCase):
    def test_anyMatchesNothingAtAll(self):
        """anyBytes() decides with no bytes (cmux Any(), for server-speaks-first)."""
        self.assertIs(anyBytes().match(b""), MATCH)
        self.assertIs(anyBytes().match(b"\x00junk"), MATCH)
        self.assertEqual(anyBytes().maxBytes, 0)

    def test_prefix(self):
        m = prefix(b"MUX\x00", b"RAFT")
        self.assertEqual(m.maxBytes, 4)
        self.assertIs(m.match(b""), NEED_MORE)
        self.assertIs(m.match(b"MU"), NEED_MORE)
        self.assertIs(m.match(b"RAF"), NEED_MORE)
        self.assertIs(m.match(b"MUX\x00"), MATCH)
        self.assertIs(m.match(b"RAFTing"), MATCH)
        self.assertIs(m.match(b"MUD"), NO_MATCH)
        self.assertIs(m.match(b"X"), NO_MATCH)

    def test_prefixRejectsEmpty(self):
        self.assertRaises(ValueError, prefix)
        self.assertRaises(ValueError, prefix, b"")
        self.assertRaises(ValueError, prefix, "text")

    def test_resultsAreNotBooleans(self):
        """`if m.match(d):` would be a bug; it raises instead of lying."""
        self.assertRaises(TypeError, bool, MATCH)


class HTTP1Tests(SynchronousTestCase):
    def test_everyMethod(self):
        """Any method token, PATCH included (cmux issue #99), and HTTP/1.0."""
        for method in [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS",
                       b"TRACE", b"PATCH", b"PROPFIND", b"M-SEARCH"]:
            self.assertIs(http1().match(method + b" /x HTTP/1.1\r\n"), MATCH, method)
        self.assertIs(http1().match(b"GET / HTTP/1.0\n"), MATCH)
        self.assertIs(http1().match(b"CONNECT host:443 HTTP/1.1\r\nHost: h\r\n"), MATCH)

    def test_needsTheWholeLine(self):
        for i in range(len(b"GET /a HTTP/1.1\r\n")):
            self.assertIs(http1().match(b"GET /a HTTP/1.1\r\n"[:i]), NEED_MORE, i)

    def test_rejections(self):
        m = http1()
        self.assertIs(m.match(PREFACE), NO_MATCH)
        self.assertIs(m.match(b"PRI * HTTP/2.0\r\n"), NO_MATCH)
        self.assertIs(m.match(b"\x16"), NO_MATCH, "TLS is rejected at the first byte")
        self.assertIs(m.match(b"\x00"), NO_MATCH, "muxado is rejected at the first byte")
        self.assertIs(m.match(b"GET"), NEED_MORE)
        self.assertIs(m.match(b"GET\r"), NO_MATCH)
        self.assertIs(m.match(b"GET  /"), NO_MATCH)
        self.assertIs(m.match(b"GET / HTTX"), NO_MATCH)
        self.assertIs(m.match(b"GET / HTTP/1.1 \r\n"), NO_MATCH)
        self.assertIs(m.match(b"GET /\r\n"), NO_MATCH, "HTTP/0.9 is not HTTP/1")
        self.assertIs(m.match(b"GET / HTTP/3.0\r\n"), NO_MATCH)

    def test_headerField(self):
        m = http1HeaderField("upgrade", "websocket")
        self.assertIs(m.match(HTTP1_REQUEST), MATCH)
        self.assertIs(m.match(HTTP1_REQUEST.replace(b"websocket", b"h2c")), NO_MATCH)
        self.assertIs(m.match(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), NO_MATCH, "absent")
        self.assertIs(m.match(b"GET / HTTP/1.1\r\nHost: x\r\nUpgr"), NEED_MORE)
        self.assertIs(m.match(b"GET / HTTP/1.1\r\nUPGRADE:\twebsocket \r\n"), MATCH)
        self.assertIs(m.match(b"GET / HTTP/1.1\r\nupgrade: websocket"), NEED_MORE)
        self.assertIs(m.match(b"GET / HTTP/1.1\r\nbad line\r\n"), NO_MATCH)
        self.assertIs(m.match(b"GET / HTTP/1.1\r\n folded\r\n"), NO_MATCH)
        self.assertIs(m.match(b"GET / HTTP/1.1\r\nUpgrade: a\r\nUpgrade: websocket\r\n"),
                      NO_MATCH, "only the first field of that name counts")

    def test_headerFieldPrefix(self):
        m = http1HeaderField("Content-Type", b"application/json", valuePrefix=True)
        self.assertIs(m.match(b"POST / HTTP/1.1\r\ncontent-type: application/json; x\r\n"),
                      MATCH)
        self.assertIs(m.match(b"POST / HTTP/1.1\r\ncontent-type: text/plain\r\n"), NO_MATCH)


class HTTP2Tests(SynchronousTestCase):
    def test_preface(self):
        m = http2()
        self.assertEqual(m.maxBytes, 24)
        self.assertIs(m.match(PREFACE), MATCH)
        for i in range(24):
            self.assertIs(m.match(PREFACE[:i]), NEED_MORE)
        self.assertIs(m.match(b"PRI * HTTP/1.1"), NO_MATCH, "diverging bytes decide early")
        self.assertIs(m.match(b"POST"), NO_MATCH)

    def test_headerFieldOnRealClientBytes(self):
        data = h2ClientBytes()
        self.assertIs(http2HeaderField("content-type", "application/grpc+proto").match(data),
                      MATCH)
        self.assertIs(http2HeaderField("Content-Type", "application/grpc", valuePrefix=True)
                      .match(data), MATCH, "names are compared in lower case")
        self.assertIs(http2HeaderField("content-type", "application/json").match(data), NO_MATCH)
        self.assertIs(http2HeaderField("x-missing", "1").match(data), NO_MATCH)
        self.assertIs(http2HeaderField(":path", "/pkg.Service/Call").match(data), MATCH)
        for i in range(len(data)):
            self.assertIs(http2HeaderField("te", "trailers").match(data[:i]), NEED_MORE, i)

    def test_headerBlockInContinuations(self):
        block = headerBlock([(":method", "GET"), (":path", "/"), ("x-route", "gossip")])
        data = (PREFACE + CLIENT_SETTINGS
                + frame(_h2.TYPE_HEADERS, 0, 1, block[:3])
                + frame(_h2.TYPE_CONTINUATION, 0, 1, block[3:5])
                + frame(_h2.TYPE_CONTINUATION, _h2.FLAG_END_HEADERS, 1, block[5:]))
        self.assertIs(http2HeaderField("x-route", "gossip").match(data), MATCH)
        self.assertIs(http2HeaderField("x-route", "gossip").match(data[:-1]), NEED_MORE)

    def test_paddedAndPriorityHeaders(self):
        block = headerBlock([(":method", "GET"), ("x-route", "gossip")])
        flags = _h2.FLAG_END_HEADERS | _h2.FLAG_PADDED | _h2.FLAG_PRIORITY
        payload = bytes([3]) + b"\x00\x00\x00\x00\x10" + block + b"\x00" * 3
        data = PREFACE + CLIENT_SETTINGS + frame(_h2.TYPE_HEADERS, flags, 1, payload)
        self.assertIs(http2HeaderField("x-route", "gossip").match(data), MATCH)

    def test_skipsControlFrames(self):
        block = headerBlock([("x-route", "gossip")])
        data = (PREFACE + CLIENT_SETTINGS + frame(8, 0, 0, b"\x00\x0f\x00\x01")
                + frame(6, 0, 0, b"12345678") + frame(0xEE, 0, 0, b"unknown")
                + frame(_h2.TYPE_HEADERS, _h2.FLAG_END_HEADERS, 3, block))
        self.assertIs(http2HeaderField("x-route", "gossip").match(data), MATCH)

    def test_badOpenings(self):
        m = http2HeaderField("x-route", "gossip")
        block = headerBlock([("x-route", "gossip")])
        headers = frame(_h2.TYPE_HEADERS, _h2.FLAG_END_HEADERS, 1, block)
        self.assertIs(m.match(PREFACE + headers), NO_MATCH, "first frame must be SETTINGS")
        self.assertIs(m.match(PREFACE + SETTINGS_ACK + headers), NO_MATCH)
        self.assertIs(m.match(PREFACE + CLIENT_SETTINGS + frame(0, 0, 1, b"x") + headers),
                      NO_MATCH, "DATA before HEADERS")
        self.assertIs(m.match(PREFACE + CLIENT_SETTINGS
                              + frame(_h2.TYPE_HEADERS, _h2.FLAG_END_HEADERS, 2, block)),
                      NO_MATCH, "even stream")
        self.assertIs(m.match(PREFACE + CLIENT_SETTINGS + b"\x01\x00\x00\x01\x04\x00\x00\x00\x01"),
                      NO_MATCH, "a frame larger than 16384 is refused at its header")
        self.assertIs(m.match(PREFACE + CLIENT_SETTINGS
                              + frame(_h2.TYPE_HEADERS, _h2.FLAG_END_HEADERS, 1, b"\xff\xff\xff")),
                      NO_MATCH, "HPACK garbage")
        self.assertIs(m.match(PREFACE + CLIENT_SETTINGS
                              + frame(_h2.TYPE_HEADERS, 0, 1, block) + headers),
                      NO_MATCH, "a HEADERS inside an unfinished block")

    def test_greeting(self):
        """The SETTINGS greeting: only when asked, only after the client's SETTINGS."""
        data = h2ClientBytes()
        waiting = PREFACE + CLIENT_SETTINGS
        sender = http2HeaderField("content-type", "x", sendSettings=True)
        self.assertEqual(sender.greeting(PREFACE), b"")
        self.assertEqual(sender.greeting(waiting[:-1]), b"")
        self.assertEqual(sender.greeting(PREFACE + SETTINGS_ACK), b"")
        self.assertEqual(sender.greeting(waiting), b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        self.assertEqual(http2HeaderField("content-type", "x").greeting(data), b"")
        self.assertEqual(http1().greeting(data), b"")


class SettingsAckFilterTests(SynchronousTestCase):
    STREAM = (PREFACE + CLIENT_SETTINGS + frame(8, 0, 0, b"\x00\x0f\x00\x01")
              + SETTINGS_ACK + frame(1, 5, 1, b"abc") + SETTINGS_ACK)
    EXPECTED = STREAM.replace(SETTINGS_ACK, b"", 1)

    def test_removesOnlyTheFirstAck(self):
        f = _h2.SettingsAckFilter()
        self.assertEqual(f.feed(self.STREAM), self.EXPECTED)
        self.assertTrue(f.done)
        self.assertEqual(f.feed(SETTINGS_ACK), SETTINGS_ACK)

    def test_preface(self):
        """Bytes of the preface that look like an ACK are not one."""
        f = _h2.SettingsAckFilter()
        self.assertEqual(f.feed(PREFACE), PREFACE)
        self.assertFalse(f.done)

    @given(st.lists(st.integers(0, len(STREAM)), max_size=8))
    def test_anySplit(self, cuts):
        f = _h2.SettingsAckFilter()
        edges = [0] + sorted(cuts) + [len(self.STREAM)]
        out = b"".join(f.feed(self.STREAM[a:b]) for a, b in zip(edges, edges[1:], strict=False))
        self.assertEqual(out, self.EXPECTED)


class TLSTests(SynchronousTestCase):
    def test_validatesTheWholeHello(self):
        m = tls()
        self.assertEqual(m.maxBytes, 16389)
        self.assertIs(m.match(HELLO), MATCH)
        self.assertIs(m.match(HELLO[:6]), NEED_MORE)
        self.assertIs(m.match(b"\x16\x03\x01\x00\x05\x01\xff\xff\xff\xff"), NO_MATCH,
                      "a bogus 16 MiB hello is refused at once")

    def test_recordStart(self):
        m = tls(validate=False)
        self.assertEqual(m.maxBytes, 6)
        self.assertIs(m.match(HELLO), MATCH)
        self.assertIs(m.match(HELLO[:6]), MATCH)
        for i in range(6):
            self.assertIs(m.match(HELLO[:i]), NEED_MORE)
        self.assertIs(m.match(b"\x16\x03\x01\x00\x10\x02"), NO_MATCH, "ServerHello")
        self.assertIs(m.match(b"\x17\x03\x03"), NO_MATCH, "application data")
        self.assertIs(m.match(b"\x16\x03\x05"), NO_MATCH)
        self.assertIs(m.match(b"\x16\x03\x01\x48"), NO_MATCH, "record too long")
        self.assertIs(m.match(b"\x16\x03\x01\x00\x00"), NO_MATCH, "empty record")
        self.assertIs(m.match(b"\x16\x02"), NO_MATCH)

    def test_sniAndALPN(self):
        self.assertIs(tls(serverNames=["NODE1.raft"]).match(HELLO), MATCH)
        self.assertIs(tls(serverNames=["node2.raft"]).match(HELLO), NO_MATCH)
        self.assertIs(tls(alpn=[b"http/1.1"]).match(HELLO), MATCH)
        self.assertIs(tls(alpn=[b"muxado"]).match(HELLO), NO_MATCH)
        self.assertIs(tls(serverNames=["node1.raft"]).match(clientHello()), NO_MATCH,
                      "no SNI at all")
        self.assertIs(tls(alpn=[b"h2"]).match(clientHello(b"x")), NO_MATCH, "no ALPN at all")
        for i in range(len(HELLO)):
            self.assertIs(tls(alpn=[b"h2"]).match(HELLO[:i]), NEED_MORE, i)

    def test_parse(self):
        hello = _tls.parseClientHello(HELLO)
        self.assertEqual(hello.serverName, b"node1.raft")
        self.assertEqual(hello.alpn, (b"h2", b"http/1.1"))

    def test_helloAcrossRecords(self):
        """A ClientHello may be fragmented over several handshake records."""
        body = HELLO[5:]
        split = b"".join(
            b"\x16\x03\x01" + len(chunk).to_bytes(2, "big") + chunk
            for chunk in (body[:3], body[3:100], body[100:]))
        self.assertEqual(_tls.parseClientHello(split).serverName, b"node1.raft")
        self.assertIs(tls(serverNames=["node1.raft"]).match(split), MATCH)

    def test_garbageInsideTheRecord(self):
        garbled = HELLO[:9] + b"\xff" * (len(HELLO) - 9)
        self.assertIs(tls(validate=False).match(garbled), MATCH, "the record start looks right")
        self.assertIs(tls().match(garbled), NO_MATCH)
        self.assertIs(tls(serverNames=["node1.raft"]).match(garbled), NO_MATCH)
        good = b"\x03\x03" + b"r" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
        alpn = b"\x00\x10\x00\x05\x00\x03\x02h2"
        self.assertEqual(_tls.parseClientHello(record(good + b"\x00\x09" + alpn)).alpn, (b"h2",))
        for body in [good + b"\x00\x0a" + alpn,            # extensions overrun the hello
                     good + b"\x00\x09" + alpn[:-1] + b"\x00",
                     good[:-2] + b"\x00" + b"\x00\x09" + alpn,  # no compression method
                     good + b"\x00\x07" + alpn[:7] + b"\x00\x00",  # empty protocol name
                     b"\x03\x03" + b"r" * 32 + b"\x40"]:      # session id > 32
            self.assertIs(tls(alpn=[b"h2"]).match(record(body)), NO_MATCH, body)

    def test_emptyALPNAndNoExtensions(self):
        bare = b"\x03\x03" + b"r" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
        self.assertEqual(_tls.parseClientHello(record(bare)), _tls.ClientHello(None, ()))


class MuxadoTests(SynchronousTestCase):
    def test_synFrames(self):
        m = muxado()
        self.assertEqual(m.maxBytes, 8)
        self.assertIs(m.match(MUXADO_SYN), MATCH)
        self.assertIs(m.match(bytes.fromhex("00000412000000036b6b6b6b")), MATCH, "stream 3, SYN")
        self.assertIs(m.match(bytes.fromhex("00000013000000")), NEED_MORE)
        for i in range(8):
            self.assertIs(m.match(MUXADO_SYN[:i]), NEED_MORE)

    def test_v1SynFrames(self):
        """Generation 1's first frames: Go's heartbeat SYN, a bare SYN, one with a type."""
        m = muxado()
        for hexed in ("00080601 00000003 7fffffff fffffeff", "00000001 00000003",
                      "00040401 00000005 00000007"):
            frame = bytes.fromhex(hexed)
            self.assertIs(m.match(frame), MATCH, hexed)
            for i in range(8):
                self.assertIs(m.match(frame[:i]), NEED_MORE)
        self.assertIs(m.match(bytes.fromhex("00000001 00000002")), NO_MATCH, "v1, even stream")
        self.assertIs(m.match(bytes.fromhex("00000601 00000003")), NO_MATCH, "v1, bad length")
        self.assertIs(m.match(bytes.fromhex("00000005 00000003")), NO_MATCH, "v1 PRI")

    def test_rejections(self):
        m = muxado()
        self.assertIs(m.match(bytes.fromhex("0000051300000002")), NO_MATCH, "even stream")
        self.assertIs(m.match(bytes.fromhex("0000051300000000")), NO_MATCH, "stream 0")
        self.assertIs(m.match(bytes.fromhex("0000051380000001")), NO_MATCH, "R bit")
        self.assertIs(m.match(bytes.fromhex("00000511")), NO_MATCH, "DATA without SYN")
        self.assertIs(m.match(bytes.fromhex("00000422")), NO_MATCH, "WNDINC")
        self.assertIs(m.match(b"\x05"), NO_MATCH, "longer than the window, at byte 0")
        self.assertIs(m.match(bytes.fromhex("040001")), NO_MATCH, "window + 1")
        self.assertIs(m.match(bytes.fromhex("0400001300000001")), MATCH, "exactly the window")
        self.assertIs(muxado(maxLength=0x1000000).match(b"\x05\x00\x00\x12\x00\x00\x00\x01"),
                      MATCH)


# -- properties ------------------------------------------------------------------

nearValid = st.one_of(
    st.binary(max_size=64),
    st.tuples(st.sampled_from(sorted(EXAMPLES.values())), st.integers(0, 2000),
              st.binary(max_size=16)).map(lambda t: t[0][:t[1]] + t[2]),
    st.tuples(st.sampled_from(sorted(EXAMPLES.values())), st.integers(0, 2000),
              st.integers(0, 255)).map(
        lambda t: t[0][:t[1]] + bytes([t[2]]) + t[0][t[1] + 1:]),
)


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(nearValid, st.binary(max_size=32))
    def test_neverRaisesAndDecisionsStay(self, data, more):
        """
        Every matcher answers one of the three sentinels on any bytes, and a
        decision (MATCH or NO_MATCH) never changes when more bytes arrive,
        which is what lets the shell call matchers again on a longer buffer.
        """
        for m in allMatchers():
            first = m.match(data)
            self.assertIn(first, (MATCH, NO_MATCH, NEED_MORE))
            m.greeting(data)
            if first is not NEED_MORE:
                self.assertIs(m.match(data + more), first, (m, data, more))

    @settings(max_examples=300, deadline=None)
    @given(nearValid)
    def test_noTwoProtocols(self, data):
        """http1, http2, tls and muxado never all claim the same bytes."""
        matched = [name for name, m in protocolMatchers().items() if m.match(data) is MATCH]
        self.assertLessEqual(len(matched), 1, (matched, data))

    def test_firstBytesAreExactlyTheBytesNotRefusedAtOnce(self):
        """
        ``firstBytes`` (which lets the shell skip a matcher) names exactly
        the first bytes the matcher does not refuse on sight.
        """
        for m in allMatchers() + [muxado(maxLength=0x1000000), muxado(maxLength=0x2ffff)]:
            refusedAtOnce = {b for b in range(256) if m.match(bytes([b])) is NO_MATCH}
            if m.firstBytes is None:
                self.assertEqual(refusedAtOnce, set(), m)
            else:
                self.assertEqual(set(range(256)) - refusedAtOnce, set(m.firstBytes), m)

    @settings(max_examples=300, deadline=None)
    @given(nearValid)
    def test_otherFirstByteNeverMatches(self, data):
        """However it goes on, a connection starting with another byte is NO_MATCH."""
        for m in allMatchers():
            if data and m.firstBytes is not None and data[0] not in m.firstBytes:
                self.assertIs(m.match(data), NO_MATCH, (m, data))

    @given(st.sampled_from(sorted(EXAMPLES)), st.data())
    def test_prefixesOfValidInput(self, name, data):
        """A truncated valid opening is NEED_MORE (or already MATCH), never NO_MATCH."""
        example = EXAMPLES[name]
        cut = data.draw(st.integers(0, len(example)))
        self.assertIn(protocolMatchers()[name].match(example[:cut]), (NEED_MORE, MATCH))
        self.assertIs(protocolMatchers()[name].match(example), MATCH)

    def test_examplesAreRecognisedByTheirOwnMatcherOnly(self):
        for name, example in EXAMPLES.items():
            for other, m in protocolMatchers().items():
                self.assertIs(m.match(example), MATCH if other == name else NO_MATCH,
                              (name, other))
