# -*- test-case-name: raftmux.test.test_muxado_frames -*-
"""
The muxado frame codec against the spec's golden vectors (section 11, taken
from Go's own encoders and live sessions), both ways, plus bad input.
"""

from binascii import unhexlify

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.muxado import frames
from raftmux.muxado.errors import ErrorCode, FrameEncodeError, ProtocolError
from raftmux.muxado.frames import (
    Data,
    FrameDecoder,
    GoAway,
    Rst,
    Unknown,
    WndInc,
    encodeData,
    encodeGoAway,
    encodeHeader,
    encodeRst,
    encodeWndInc,
)


def h(text):
    return unhexlify(text.replace(" ", ""))


def decodeAll(data, pieces=None, **kw):
    """Decode ``data`` fed in ``pieces`` (sizes), merging DATA pieces per frame."""
    decoder = FrameDecoder(**kw)
    out = []
    pos = 0
    for size in pieces or [len(data)]:
        out.extend(decoder.receiveData(data[pos:pos + size]))
        pos += size
    if pos < len(data):
        out.extend(decoder.receiveData(data[pos:]))
    return merge(out)


def merge(decoded):
    """Collapse DATA pieces into (streamId, flags, payload) tuples; keep others."""
    merged = []
    for f in decoded:
        if isinstance(f, Data):
            if f.first:
                merged.append(["data", f.streamId, f.flags, b"", f.length])
            merged[-1][3] += f.data
        else:
            merged.append(f)
    return [tuple(m) if isinstance(m, list) else m for m in merged]


class GoldenVectorTests(SynchronousTestCase):
    """Spec section 11: our encoder writes Go's bytes; our decoder reads them."""

    def test_dataSynFin(self):
        wire = h("000005130000000168656c6c6f")
        self.assertEqual(encodeData(1, b"hello", fin=True, syn=True), wire)
        self.assertEqual(decodeAll(wire), [("data", 1, 0x3, b"hello", 5)])

    def test_goClientOpenWriteCloseWrite(self):
        wire = h("000005120000000368656c6c6f") + h("0000001100000003")
        self.assertEqual(encodeData(3, b"hello", syn=True) + encodeData(3, fin=True), wire)
        self.assertEqual(decodeAll(wire), [("data", 3, 0x2, b"hello", 5),
                                           ("data", 3, 0x1, b"", 0)])

    def test_wndInc(self):
        wire = h("0000042000000001000003e8")
        self.assertEqual(encodeWndInc(1, 1000), wire)
        [f] = decodeAll(wire)
        self.assertEqual((f.streamId, f.increment), (1, 1000))

    def test_goAwayEmpty(self):
        wire = h("00000830000000000000000300000000")
        self.assertEqual(encodeGoAway(3, 0), wire)
        [f] = decodeAll(wire)
        self.assertEqual((f.lastStreamId, f.code, f.debug), (3, 0, b""))

    def test_goAwayNoError(self):
        for last, wire in [(3, "000010300000000000000003000000006e6f206572726f72"),
                           (0, "000010300000000000000000000000006e6f206572726f72"),
                           (1, "000010300000000000000001000000006e6f206572726f72")]:
            self.assertEqual(encodeGoAway(last, 0, b"no error"), h(wire))
            [f] = decodeAll(h(wire))
            self.assertEqual((f.lastStreamId, f.code, f.debug), (last, 0, b"no error"))

    def test_goAwayDebugIsExactlyLengthMinus8(self):
        """Go's over-read bug (spec 4.4) must not be copied: the next frame survives."""
        wire = encodeGoAway(3, 0, b"bye") + h("0000091000000003") + b"123456789"
        decoded = decodeAll(wire)
        self.assertEqual(decoded[0].debug, b"bye")
        self.assertEqual(decoded[1], ("data", 3, 0, b"123456789", 9))

    def test_rst(self):
        wire = h("000004000000000100000004")
        self.assertEqual(encodeRst(1, ErrorCode.STREAM_CLOSED), wire)
        [f] = decodeAll(wire)
        self.assertEqual((f.streamId, f.code), (1, 4))
        self.assertEqual(encodeRst(0x49A1BB00, 5), h("00000400 49a1bb00 00000005"))

    def test_synFinEmpty(self):
        self.assertEqual(encodeData(3, fin=True, syn=True), h("0000001300000003"))

    def test_heartbeatFrames(self):
        self.assertEqual(encodeData(3, b"\xff\xff\xff\xff", syn=True),
                         h("0000041200000003ffffffff"))
        self.assertEqual(encodeData(3, h("197618c7")), h("0000041000000003197618c7"))

    def test_goAcceptorReply(self):
        wire = h("0000042000000001 00000005") + h("0000051000000001 7265737021")
        decoded = decodeAll(wire)
        self.assertEqual((decoded[0].streamId, decoded[0].increment), (1, 5))
        self.assertEqual(decoded[1], ("data", 1, 0, b"resp!", 5))

    def test_goDecoderVectors(self):
        [f] = decodeAll(h("00000510 49a1bb00 0001020304"))
        self.assertEqual(f, ("data", 0x49A1BB00, 0, h("0001020304"), 5))
        payload = h("ffeeddccbbaa99887766554433221100")
        self.assertEqual(encodeData(0x7FFFFFFF, payload, fin=True),
                         h("00001011 7fffffff") + payload)
        [f] = decodeAll(h("00001011 7fffffff") + payload)
        self.assertEqual(f, ("data", 0x7FFFFFFF, 1, payload, 16))
        self.assertEqual(decodeAll(h("00000010 00000001")), [("data", 1, 0, b"", 0)])
        [f] = decodeAll(h("00000420 00000001 0012c498"))
        self.assertEqual(f.increment, 0x12C498)
        [f] = decodeAll(h("00000420 00000001 7fffffff"))
        self.assertEqual(f.increment, 0x7FFFFFFF)

    def test_wndIncReservedBitMasked(self):
        [f] = decodeAll(h("00000420 00000001 800003e8"))
        self.assertEqual(f.increment, 1000)

    def test_headerPackTable(self):
        self.assertEqual(encodeHeader(0xFFFFFF, 0xF, 0xF, 0x7FFFFFFF), h("ffffffff7fffffff"))
        self.assertEqual(encodeHeader(0x0F1DAA, 0xC, 0xF, 0x4F224719), h("0f1daacf4f224719"))
        self.assertEqual(encodeHeader(4, 0, 0, 0x2843), h("0000040000002843"))
        for bad in [(0, 1, 0, 0x80000000), (0, 1, 0, 0xFFFFFFFF), (0x1000000, 1, 0, 1),
                    (-1, 1, 0, 1)]:
            self.assertRaises(FrameEncodeError, encodeHeader, *bad)

    def test_encoderRefusals(self):
        self.assertRaises(FrameEncodeError, encodeWndInc, 1, 0)
        self.assertRaises(FrameEncodeError, encodeWndInc, 1, 0x80000000)
        self.assertRaises(FrameEncodeError, encodeRst, 0, 1)
        self.assertRaises(FrameEncodeError, encodeData, 0, b"x")
        self.assertRaises(FrameEncodeError, encodeGoAway, 0x80000000, 0)
        self.assertRaises(FrameEncodeError, encodeData, 1, b"x" * 0x1000000)

    def test_unknownTypesSkipped(self):
        wire = h("0037bd7200000000") + b"z" * 0x37BD + encodeData(1, b"ok")
        decoded = decodeAll(wire, pieces=[3, 5000, 7])
        self.assertIsInstance(decoded[0], Unknown)
        self.assertEqual((decoded[0].frameType, decoded[0].length), (7, 0x37BD))
        self.assertEqual(decoded[1], ("data", 1, 0, b"ok", 2))


class DecoderErrorTests(SynchronousTestCase):
    """Every decode error carries the code the session must send (spec 4.6)."""

    def assertDecodeError(self, wire, code):
        e = self.assertRaises(ProtocolError, FrameDecoder().receiveData, wire)
        self.assertEqual(e.code, code)
        return e

    def test_rstBadLength(self):
        self.assertDecodeError(h("00000300 49a1bb00 000000"), ErrorCode.FRAME_SIZE_ERROR)

    def test_rstStreamZero(self):
        self.assertDecodeError(h("00000400 00000000 00000001"), ErrorCode.PROTOCOL_ERROR)

    def test_wndIncZero(self):
        self.assertDecodeError(h("00000420 04b1bd09 00000000"), ErrorCode.PROTOCOL_ERROR)

    def test_wndIncBadLength(self):
        self.assertDecodeError(h("00000520 04b1bd09 0000000100"), ErrorCode.FRAME_SIZE_ERROR)

    def test_dataStreamZero(self):
        self.assertDecodeError(h("00000110 00000000 00"), ErrorCode.PROTOCOL_ERROR)

    def test_reservedBit(self):
        self.assertDecodeError(h("00000110 80000001 00"), ErrorCode.PROTOCOL_ERROR)

    def test_goAwayNonZeroStream(self):
        self.assertDecodeError(h("00000830 00000001") + bytes(8), ErrorCode.PROTOCOL_ERROR)

    def test_goAwayShort(self):
        self.assertDecodeError(h("00000730 00000000") + bytes(7), ErrorCode.FRAME_SIZE_ERROR)

    def test_deadAfterError(self):
        decoder = FrameDecoder()
        self.assertRaises(ProtocolError, decoder.receiveData, h("00000400 00000000 00000001"))
        self.assertRaises(ProtocolError, decoder.receiveData, encodeData(1, b"x"))

    def test_shortReadWaits(self):
        """A truncated frame is not an error: the decoder waits for the rest."""
        decoder = FrameDecoder()
        self.assertEqual(decoder.receiveData(h("00000400 49a1bb00 000001")), [])
        [f] = decoder.receiveData(b"\x02")
        self.assertEqual(f.code, 0x102)

    def test_goAwayDebugCapped(self):
        """A huge GOAWAY debug text costs at most the cap in memory."""
        debug = b"d" * 100000
        wire = encodeGoAway(1, 2, debug) + encodeData(1, b"after")
        decoded = decodeAll(wire, pieces=[1000] * 101, maxGoAwayDebug=100)
        self.assertEqual(decoded[0].debug, b"d" * 100)
        self.assertTrue(decoded[0].truncated)
        self.assertEqual(decoded[1], ("data", 1, 0, b"after", 5))

    def test_hugeDataIsStreamedNotBuffered(self):
        decoder = FrameDecoder()
        decoder.receiveData(frames.dataHeader(1, 0xFFFFFF))
        for _ in range(10):
            [piece] = decoder.receiveData(b"x" * 65536)
            self.assertEqual(len(piece.data), 65536)
        self.assertEqual(len(decoder._buf), 0)


frameStrategy = st.one_of(
    st.builds(lambda s, d, fin, syn: encodeData(s, d, fin, syn),
              st.integers(1, 0x7FFFFFFF), st.binary(max_size=300), st.booleans(), st.booleans()),
    st.builds(encodeRst, st.integers(1, 0x7FFFFFFF), st.integers(0, 0xFFFFFFFF)),
    st.builds(encodeWndInc, st.integers(1, 0x7FFFFFFF), st.integers(1, 0x7FFFFFFF)),
    st.builds(encodeGoAway, st.integers(0, 0x7FFFFFFF), st.integers(0, 0xFFFFFFFF),
              st.binary(max_size=50)),
)


class PropertyTests(SynchronousTestCase):

    @given(st.lists(frameStrategy, max_size=20), st.lists(st.integers(1, 64), max_size=40))
    def test_anySplitDecodesTheSame(self, encoded, cuts):
        """Frames cut at arbitrary points decode exactly as when whole."""
        wire = b"".join(encoded)
        whole = decodeAll(wire)
        split = decodeAll(wire, pieces=cuts)
        self.assertEqual([repr(f) if not isinstance(f, tuple) else f for f in whole],
                         [repr(f) if not isinstance(f, tuple) else f for f in split])
        self.assertEqual(len(whole), len(encoded))

    @given(st.binary(max_size=2000), st.lists(st.integers(1, 300), max_size=20))
    def test_randomBytesOnlyEverRaiseProtocolError(self, junk, cuts):
        decoder = FrameDecoder(maxGoAwayDebug=64)
        pos = 0
        try:
            for size in cuts + [len(junk)]:
                for f in decoder.receiveData(junk[pos:pos + size]):
                    self.assertIsInstance(f, (Data, Rst, WndInc, GoAway, Unknown))
                pos += size
        except ProtocolError as e:
            self.assertIn(e.code, (ErrorCode.PROTOCOL_ERROR, ErrorCode.FRAME_SIZE_ERROR))
        self.assertLessEqual(len(decoder._buf), 8 + 64)
