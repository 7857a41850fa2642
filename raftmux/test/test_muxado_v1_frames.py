# -*- test-case-name: raftmux.test.test_muxado_v1_frames -*-
"""
The muxado v1 frame codec against the spec's golden vectors (Appendix A and
15.2, taken from Go v1's own encoders and a live Go v1 session), both ways,
plus every decoder error, Go's broken GOAWAY and random input.
"""

import struct
from binascii import unhexlify

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.muxado.errors import ErrorCode, FrameEncodeError, ProtocolError
from raftmux.muxado.v1frames import (
    CODE_TABLE,
    FLAG_FIN,
    HEARTBEAT_PRIORITY,
    HEARTBEAT_TYPE,
    TYPE_DATA,
    TYPE_GOAWAY,
    TYPE_RST,
    Data,
    FrameDecoder,
    GoAway,
    Rst,
    Syn,
    WireCode,
    WndInc,
    dataHeader,
    encodeData,
    encodeGoAway,
    encodeHeader,
    encodeRst,
    encodeSyn,
    encodeWndInc,
    fromWireCode,
    toWireCode,
)


def h(text):
    return unhexlify(text.replace(" ", ""))


def decodeAll(data, pieces=None, decoder=None, **kw):
    """Decode ``data`` fed in ``pieces`` (sizes), DATA pieces merged per frame."""
    decoder = decoder or FrameDecoder(**kw)
    out = []
    pos = 0
    for size in pieces or [len(data)]:
        out.extend(decoder.receiveData(data[pos:pos + size]))
        pos += size
    if pos < len(data):
        out.extend(decoder.receiveData(data[pos:]))
    return merge(out)


def merge(decoded):
    """DATA pieces become ("data", id, flags, payload, length); others become tuples too."""
    merged = []
    for f in decoded:
        if isinstance(f, Data):
            if f.first:
                merged.append(["data", f.streamId, f.flags, b"", f.length])
            merged[-1][3] += f.data
        elif isinstance(f, Syn):
            merged.append(("syn", f.streamId, f.flags, f.priority, f.streamType))
        elif isinstance(f, Rst):
            merged.append(("rst", f.streamId, f.code))
        elif isinstance(f, WndInc):
            merged.append(("wndinc", f.streamId, f.increment))
        else:
            merged.append(("goaway", f.lastStreamId, f.code, f.debug, f.declaredDebug))
    return [tuple(m) for m in merged]


class GoldenVectorTests(SynchronousTestCase):
    """Spec Appendix A / 15.2: our encoder writes Go v1's bytes; our decoder reads them."""

    def test_rstHeader(self):
        """Go's header_test vector: RST, length 4, stream 0x2843."""
        self.assertEqual(encodeHeader(4, TYPE_RST, 0, 0x2843), h("0004000200002843"))
        self.assertEqual(decodeAll(h("0004000200002843 00000004")), [("rst", 0x2843, 4)])

    def test_headerPackTable(self):
        """More of Go's header_test table: every field at its width."""
        self.assertEqual(encodeHeader(0x37BD, 0x1F, 0x9, 0), h("37bd091f00000000"))
        self.assertEqual(encodeHeader(0x3FFF, 0x1F, 0xFF, 0x7FFFFFFF), h("3fffff1f7fffffff"))
        self.assertEqual(encodeHeader(0, 0, 0, 0), bytes(8))

    def test_bareSyn(self):
        wire = h("00000001 00000003")
        self.assertEqual(encodeSyn(3), wire)
        self.assertEqual(encodeSyn(3, 0, 0), wire)   # Go leaves zero fields out
        self.assertEqual(decodeAll(wire), [("syn", 3, 0, None, None)])

    def test_synPriorityTypeFin(self):
        wire = h("00080701 00000003 7fffffff fffffeff")
        self.assertEqual(encodeSyn(3, 0x7FFFFFFF, 0xFFFFFEFF, fin=True), wire)
        [f] = FrameDecoder().receiveData(wire)
        self.assertEqual((f.streamId, f.priority, f.streamType, f.fin),
                         (3, 0x7FFFFFFF, 0xFFFFFEFF, True))

    def test_heartbeatSyn(self):
        """A Go v1 session's heartbeat stream, as captured (spec 15.2)."""
        wire = h("00080601 00000005 7fffffff fffffeff")
        self.assertEqual(encodeSyn(5, HEARTBEAT_PRIORITY, HEARTBEAT_TYPE), wire)
        self.assertEqual(decodeAll(wire), [("syn", 5, 6, 0x7FFFFFFF, 0xFFFFFEFF)])

    def test_synOneField(self):
        self.assertEqual(encodeSyn(3, priority=9), h("00040201 00000003 00000009"))
        self.assertEqual(encodeSyn(3, streamType=9), h("00040401 00000003 00000009"))
        self.assertEqual(decodeAll(h("00040201 00000003 00000009")), [("syn", 3, 2, 9, None)])
        self.assertEqual(decodeAll(h("00040401 00000003 00000009")), [("syn", 3, 4, None, 9)])

    def test_dataHelloFin(self):
        wire = h("000501 03 00000003 68656c6c6f")
        self.assertEqual(encodeData(3, b"hello", fin=True), wire)
        self.assertEqual(decodeAll(wire), [("data", 3, FLAG_FIN, b"hello", 5)])

    def test_goClientOpenWritePing(self):
        """Captured from a Go v1 client: bare SYN, "ping", then its heartbeat SYN."""
        wire = h("00000001 00000003") + h("00040003 00000003 70696e67") + h(
            "00080601 00000005 7fffffff fffffeff")
        self.assertEqual(encodeSyn(3) + encodeData(3, b"ping")
                         + encodeSyn(5, HEARTBEAT_PRIORITY, HEARTBEAT_TYPE), wire)
        self.assertEqual(decodeAll(wire, pieces=[3, 9, 1]),
                         [("syn", 3, 0, None, None), ("data", 3, 0, b"ping", 4),
                          ("syn", 5, 6, 0x7FFFFFFF, 0xFFFFFEFF)])

    def test_wndInc(self):
        wire = h("00040004 00000003 000003e8")
        self.assertEqual(encodeWndInc(3, 1000), wire)
        self.assertEqual(decodeAll(wire), [("wndinc", 3, 1000)])

    def test_rst(self):
        wire = h("00040002 00000003 00000007")
        self.assertEqual(encodeRst(3, WireCode.CANCEL), wire)
        self.assertEqual(decodeAll(wire), [("rst", 3, 7)])

    def test_encoderIsCorrect(self):
        """The encoder can write correct debug text (length 8 + len(debug)); we send none."""
        wire = h("00100006 00000000 00000003 00000000") + b"no error"
        self.assertEqual(encodeGoAway(3, WireCode.NO_ERROR, b"no error"), wire)
        self.assertEqual(encodeGoAway(1, 0), h("00080006 00000000 00000001 00000000"))

    def test_goBrokenGoAwayActedOnAtOnce(self):
        """
        Go v1's GOAWAY(3, 0, "no error") declares 24 bytes and carries 8: the
        decoder reports it at once, with no debug, and waits for nothing.
        """
        decoder = FrameDecoder()
        [f] = decoder.receiveData(h("00180006 00000000 00000003 00000000"))
        self.assertIsInstance(f, GoAway)
        self.assertEqual((f.lastStreamId, f.code, f.debug, f.declaredDebug), (3, 0, b"", 16))
        self.assertTrue(f.truncated)

    def test_reservedBitsIgnored(self):
        """Top 2 length bits, top 3 type bits and the R bits are masked on read, as in Go."""
        self.assertEqual(decodeAll(h("c005 01 e3 80000003") + b"hello"),
                         [("data", 3, FLAG_FIN, b"hello", 5)])
        self.assertEqual(decodeAll(h("00040004 00000003 800003e8")), [("wndinc", 3, 1000)])
        self.assertEqual(decodeAll(h("00080006 00000000 80000005 00000001")),
                         [("goaway", 5, 1, b"", 0)])

    def test_unknownFlagsIgnored(self):
        self.assertEqual(decodeAll(h("0002fe03 00000003 6869")), [("data", 3, 0xFE, b"hi", 2)])
        self.assertEqual(decodeAll(h("0000f801 00000003")), [("syn", 3, 0xF8, None, None)])

    def test_zeroWndIncAccepted(self):
        """Go v1 adds a zero increment without complaint; the decoder passes it up."""
        self.assertEqual(decodeAll(h("00040004 00000003 00000000")), [("wndinc", 3, 0)])

    def test_anyRstCodeDecoded(self):
        self.assertEqual(decodeAll(h("00040002 00000003 ffffffff")), [("rst", 3, 0xFFFFFFFF)])


class EncoderRefusalTests(SynchronousTestCase):

    def test_header(self):
        for bad in [(0x4000, TYPE_DATA, 0, 1), (-1, TYPE_DATA, 0, 1),
                    (0, TYPE_DATA, 0, 0x80000000), (0, 0x20, 0, 1), (0, TYPE_DATA, 0x100, 1)]:
            self.assertRaises(FrameEncodeError, encodeHeader, *bad)

    def test_frames(self):
        self.assertRaises(FrameEncodeError, encodeSyn, 0)
        self.assertRaises(FrameEncodeError, encodeSyn, 3, 0x80000000)
        self.assertRaises(FrameEncodeError, encodeSyn, 3, None, 0x100000000)
        self.assertRaises(FrameEncodeError, encodeData, 0, b"x")
        self.assertRaises(FrameEncodeError, encodeData, 3, b"x" * 0x4000)
        self.assertEqual(len(encodeData(3, b"x" * 0x3FFF)), 8 + 0x3FFF)
        self.assertRaises(FrameEncodeError, encodeRst, 0, 1)
        self.assertRaises(FrameEncodeError, encodeWndInc, 3, 0)
        self.assertRaises(FrameEncodeError, encodeWndInc, 3, 0x80000000)
        self.assertRaises(FrameEncodeError, encodeWndInc, 0, 1)
        self.assertRaises(FrameEncodeError, encodeGoAway, 0x80000000, 0)
        self.assertRaises(FrameEncodeError, encodeGoAway, 1, 0, b"x" * (0x3FFF - 7))
        self.assertEqual(len(encodeGoAway(1, 0, b"x" * (0x3FFF - 8))), 8 + 0x3FFF)

    def test_rstNeverCarriesCodeEightOrMore(self):
        """Go v1's RST encoder refuses codes >= 8 (NoSuchError); so does ours."""
        for code in range(8):
            encodeRst(3, code)
        for code in (8, 9, 0xFF, 0xFFFFFFFF):
            self.assertRaises(FrameEncodeError, encodeRst, 3, code)


class CodeTableTests(SynchronousTestCase):

    def test_wireNumbersRoundTrip(self):
        self.assertEqual([fromWireCode(n) for n in range(8)], [
            ErrorCode.NO_ERROR, ErrorCode.PROTOCOL_ERROR, ErrorCode.INTERNAL_ERROR,
            ErrorCode.FLOW_CONTROL_ERROR, ErrorCode.STREAM_CLOSED, ErrorCode.FRAME_SIZE_ERROR,
            ErrorCode.STREAM_REFUSED, ErrorCode.STREAM_CANCELLED])
        for n in range(8):
            self.assertEqual(toWireCode(fromWireCode(n)), n)

    def test_differencesFromV2(self):
        self.assertEqual(toWireCode(ErrorCode.FRAME_SIZE_ERROR), 5)
        self.assertEqual(toWireCode(ErrorCode.STREAM_REFUSED), 6)
        self.assertEqual(toWireCode(ErrorCode.ACCEPT_QUEUE_FULL), 6)
        self.assertEqual(toWireCode(ErrorCode.STREAM_CANCELLED), 7)

    def test_everyCodeSendableInRst(self):
        for code in list(ErrorCode) + [12345, 0xFFFFFFFF]:
            wire = toWireCode(code)
            self.assertIn(wire, range(8))
            encodeRst(1, wire)
        self.assertEqual({code for code, _ in CODE_TABLE}, set(ErrorCode))

    def test_unknownReceivedCode(self):
        for n in (8, 9, 0xFF, 0xFFFFFFFF):
            self.assertEqual(fromWireCode(n), ErrorCode.UNKNOWN)


class DecoderErrorTests(SynchronousTestCase):
    """Every decode error carries the semantic code the connection must send."""

    def assertDecodeError(self, wire, code):
        e = self.assertRaises(ProtocolError, FrameDecoder().receiveData, wire)
        self.assertEqual(e.code, code)
        return e

    def test_synLengthMustMatchFlags(self):
        for wire in ["00040001 00000003 00000001",            # no fields flagged
                     "00040601 00000003 00000001",            # two flagged, one sent
                     "00000201 00000003",                     # priority flagged, none sent
                     "00080201 00000003 00000001 00000002",   # one flagged, two sent
                     "000c0601 00000003 00000001 00000002 00000003"]:  # Go panics on this
            self.assertDecodeError(h(wire), ErrorCode.FRAME_SIZE_ERROR)

    def test_synStreamZero(self):
        self.assertDecodeError(h("00000001 00000000"), ErrorCode.PROTOCOL_ERROR)

    def test_rstBadLength(self):
        self.assertDecodeError(h("00030002 00000003 000000"), ErrorCode.FRAME_SIZE_ERROR)
        self.assertDecodeError(h("00050002 00000003 0000000000"), ErrorCode.FRAME_SIZE_ERROR)

    def test_rstStreamZero(self):
        self.assertDecodeError(h("00040002 00000000 00000001"), ErrorCode.PROTOCOL_ERROR)

    def test_wndIncBadLength(self):
        self.assertDecodeError(h("00050004 00000003 0000000100"), ErrorCode.FRAME_SIZE_ERROR)
        self.assertDecodeError(h("00000004 00000003"), ErrorCode.FRAME_SIZE_ERROR)

    def test_wndIncStreamZero(self):
        self.assertDecodeError(h("00040004 00000000 00000001"), ErrorCode.PROTOCOL_ERROR)

    def test_dataStreamZero(self):
        self.assertDecodeError(h("00010003 00000000 00"), ErrorCode.PROTOCOL_ERROR)

    def test_priFrame(self):
        """Type 5 is declared but Go v1 dies on it; so do we."""
        self.assertDecodeError(h("00000005 00000003"), ErrorCode.PROTOCOL_ERROR)
        self.assertDecodeError(h("00040005 00000003 00000001"), ErrorCode.PROTOCOL_ERROR)

    def test_undefinedTypes(self):
        for frameType in [0, 7, 8, 0x10, 0x1F]:
            self.assertDecodeError(encodeHeader(0, frameType, 0, 3), ErrorCode.PROTOCOL_ERROR)

    def test_goAwayShort(self):
        self.assertDecodeError(h("00070006 00000000") + bytes(7), ErrorCode.FRAME_SIZE_ERROR)

    def test_goAwayNonZeroStream(self):
        self.assertDecodeError(h("00080006 00000001") + bytes(8), ErrorCode.PROTOCOL_ERROR)

    def test_errorAtTheHeader(self):
        """A bad length is refused on the header alone: no body is waited for."""
        decoder = FrameDecoder()
        self.assertEqual(decoder.receiveData(h("00050002 000000")), [])
        self.assertRaises(ProtocolError, decoder.receiveData, b"\x03")

    def test_framesBeforeTheErrorAreLostWithTheSession(self):
        """The error ends the session; the decoder stays dead."""
        decoder = FrameDecoder()
        self.assertRaises(ProtocolError, decoder.receiveData,
                          encodeSyn(3) + h("00000005 00000003"))
        self.assertRaises(ProtocolError, decoder.receiveData, encodeSyn(5))

    def test_truncatedFrameWaits(self):
        decoder = FrameDecoder()
        wire = encodeSyn(3, 1, 2)
        for i in range(len(wire) - 1):
            self.assertEqual(decoder.receiveData(wire[i:i + 1]), [])
        [f] = decoder.receiveData(wire[-1:])
        self.assertEqual((f.priority, f.streamType), (1, 2))


def goGoAway(lastStreamId, wireCode, debug=b""):
    """What Go v1's encoder writes: length 16 + len(debug), the 8-byte body, no debug."""
    return encodeHeader(16 + len(debug), TYPE_GOAWAY, 0, 0) + struct.pack(
        ">II", lastStreamId, wireCode)


class GoAwayTests(SynchronousTestCase):
    """A GOAWAY is acted on at its 8-byte body; declared debug text is never awaited."""

    def test_goBrokenGoAwayThenMoreFrames(self):
        """Go's GoAway() leaves the session open and goes on sending: we read on."""
        decoder = FrameDecoder()
        broken = h("00180006 00000000 00000003 00000000")
        self.assertEqual(broken, goGoAway(3, 0, b"no error"))
        frames = merge(decoder.receiveData(broken + encodeData(3, b"late")))
        self.assertEqual(frames, [("goaway", 3, 0, b"", 16), ("data", 3, 0, b"late", 4)])

    def test_actedOnAtTheBody(self):
        decoder = FrameDecoder()
        wire = goGoAway(7, 1, b"bye now")
        self.assertEqual(decoder.receiveData(wire[:15]), [])
        [f] = decoder.receiveData(wire[15:])
        self.assertEqual((f.lastStreamId, f.code, f.debug, f.declaredDebug), (7, 1, b"", 15))

    def test_ourGoAwayHasNoDebug(self):
        self.assertEqual(encodeGoAway(3, 0), h("00080006 00000000 00000003 00000000"))
        wire = encodeData(3, b"before") + encodeGoAway(3, 0) + encodeData(3, b"after")
        self.assertEqual(decodeAll(wire, pieces=[5, 20, 3]),
                         [("data", 3, 0, b"before", 6), ("goaway", 3, 0, b"", 0),
                          ("data", 3, 0, b"after", 5)])


class StreamingTests(SynchronousTestCase):

    def test_dataIsStreamedNotBuffered(self):
        decoder = FrameDecoder()
        [first] = decoder.receiveData(dataHeader(3, 0x3FFF) + b"ab")
        self.assertEqual((first.data, first.first, first.last, first.length),
                         (b"ab", True, False, 0x3FFF))
        total = 2
        while total < 0x3FFF:
            [piece] = decoder.receiveData(b"x" * min(1000, 0x3FFF - total))
            total += len(piece.data)
            self.assertFalse(piece.first)
        self.assertTrue(piece.last)
        self.assertEqual(len(decoder._buf), 0)


def synFrames():
    return st.builds(lambda s, p, t, fin: encodeSyn(s, p, t, fin),
                     st.integers(1, 0x7FFFFFFF), st.one_of(st.none(), st.integers(0, 0x7FFFFFFF)),
                     st.one_of(st.none(), st.integers(0, 0xFFFFFFFF)), st.booleans())


frameStrategy = st.one_of(
    synFrames(),
    st.builds(lambda s, d, fin: encodeData(s, d, fin),
              st.integers(1, 0x7FFFFFFF), st.binary(max_size=300), st.booleans()),
    st.builds(encodeRst, st.integers(1, 0x7FFFFFFF), st.integers(0, 7)),
    st.builds(encodeWndInc, st.integers(1, 0x7FFFFFFF), st.integers(1, 0x7FFFFFFF)),
)
goAwayStrategy = st.one_of(
    st.builds(encodeGoAway, st.integers(0, 0x7FFFFFFF), st.integers(0, 0xFFFFFFFF)),
    st.builds(goGoAway, st.integers(0, 0x7FFFFFFF), st.integers(0, 0xFFFFFFFF),
              st.binary(max_size=50)))


class PropertyTests(SynchronousTestCase):

    @settings(max_examples=150)
    @given(st.lists(st.one_of(frameStrategy, goAwayStrategy), max_size=20),
           st.lists(st.integers(1, 64), max_size=40))
    def test_anySplitDecodesTheSame(self, encoded, cuts):
        """Frames (GOAWAYs of ours and of Go's among them) decode the same however cut."""
        wire = b"".join(encoded)
        whole = decodeAll(wire)
        self.assertEqual(len(whole), len(encoded))
        self.assertEqual(whole, decodeAll(wire, pieces=cuts))

    @given(synFrames())
    def test_synRoundTrip(self, wire):
        [f] = FrameDecoder().receiveData(wire)
        self.assertEqual(encodeSyn(f.streamId, f.priority, f.streamType, f.fin), wire)

    @given(st.binary(max_size=2000), st.lists(st.integers(1, 300), max_size=20))
    def test_randomBytesOnlyEverRaiseProtocolError(self, junk, cuts):
        decoder = FrameDecoder(maxGoAwayDebug=64)
        pos = 0
        try:
            for size in cuts + [len(junk)]:
                for f in decoder.receiveData(junk[pos:pos + size]):
                    self.assertIsInstance(f, (Syn, Data, Rst, WndInc, GoAway))
                    if isinstance(f, GoAway):
                        self.assertLessEqual(len(f.debug), 64)
                pos += size
        except ProtocolError as e:
            self.assertIn(e.code, (ErrorCode.PROTOCOL_ERROR, ErrorCode.FRAME_SIZE_ERROR))
        self.assertLessEqual(len(decoder._buf), 8)

    @given(st.integers(0, 0x3FFF), st.integers(0, 0xFF), st.integers(0, 0x7FFFFFFF))
    def test_dataHeaderMatchesEncoder(self, length, flags, streamId):
        self.assertEqual(dataHeader(streamId, length, flags),
                         encodeHeader(length, TYPE_DATA, flags, streamId))

    def test_goAwayType(self):
        self.assertEqual(encodeHeader(8, TYPE_GOAWAY, 0, 0), h("00080006 00000000"))
