# -*- test-case-name: raftmux.test.test_gossip_framing -*-
"""
The sans-IO 0xCC/0xCD frame codec, checked against ckit's own tests and with
hypothesis (synchronous tests only: trial's Deferred tests cannot use @given).
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.gossip.framing import (
    BadMagic,
    FrameDecoder,
    FrameTooLarge,
    TruncatedFrame,
    decodeAll,
    encodeFrame,
    frameHeader,
)


class EncodeTests(SynchronousTestCase):
    def test_shortHeader(self):
        """ckit TestWrite3ByteHeaderForSmallMessages: 'hello' is exactly CC 00 05 hello."""
        self.assertEqual(encodeFrame(b"hello"), b"\xcc\x00\x05hello")
        self.assertEqual(encodeFrame(b""), b"\xcc\x00\x00")

    def test_magicByLength(self):
        """CC up to 65,535 bytes (so old peers read it), CD only above."""
        self.assertEqual(frameHeader(65535), b"\xcc\xff\xff")
        self.assertEqual(frameHeader(65536), b"\xcd\x00\x01\x00\x00")
        self.assertEqual(frameHeader(70000), b"\xcd\x00\x01\x11\x70")

    def test_tooLargeForWire(self):
        self.assertRaises(FrameTooLarge, frameHeader, 2 ** 32)

    def test_roundTripCkitSizes(self):
        """ckit TestMessageRoundTrip sizes, one body holding all four."""
        payloads = [b"a" * 65535, b"b" * 100, b"c" * 65536, b"d" * 1000000]
        body = b"".join(encodeFrame(p) for p in payloads)
        self.assertEqual(decodeAll(body), payloads)


class DecodeTests(SynchronousTestCase):
    def test_legacyHeader(self):
        """ckit TestRead3ByteHeaderMessage: a hand-built CC frame decodes."""
        self.assertEqual(decodeAll(b"\xcc\x00\x05hello"), [b"hello"])

    def test_emptyBody(self):
        self.assertEqual(decodeAll(b""), [])

    def test_badMagic(self):
        decoder = FrameDecoder()
        e = self.assertRaises(BadMagic, decoder.feed, b"\xcc\x00\x01x\xab\x00\x00")
        self.assertEqual(str(e), "unrecognized magic byte (ab)")
        # dead after an error: garbage is never resumed
        self.assertRaises(BadMagic, decoder.feed, b"\xcc\x00\x00")

    def test_truncated(self):
        for body in (b"\xcc", b"\xcc\x00", b"\xcd\x00\x00\x00", b"\xcc\x00\x05hel"):
            self.assertRaises(TruncatedFrame, decodeAll, body)

    def test_oversizeRefusedBeforePayload(self):
        """A declared length above the maximum fails on the header alone: nothing allocated."""
        decoder = FrameDecoder(maxFrameSize=1000)
        self.assertRaises(FrameTooLarge, decoder.feed, b"\xcd\xff\xff\xff\xff")
        self.assertEqual(decoder.buffered, 0)
        self.assertRaises(FrameTooLarge, FrameDecoder(100).feed, b"\xcc\x00\x65")

    def test_partialFrameHoldsOnlyWhatArrived(self):
        decoder = FrameDecoder()
        self.assertEqual(decoder.feed(b"\xcd\x01\x00\x00\x00" + b"x" * 10), [])
        self.assertEqual(decoder.buffered, 10)

    def test_zeroLengthFramesYieldEmptyPayloads(self):
        self.assertEqual(decodeAll(encodeFrame(b"") * 3), [b"", b"", b""])


class PropertyTests(SynchronousTestCase):
    @given(st.lists(st.binary(max_size=300)), st.lists(st.integers(0, 2000), max_size=8))
    def test_anySplit(self, payloads, cuts):
        """Any frames, fed split at any points, decode to the same payloads."""
        body = b"".join(encodeFrame(p) for p in payloads)
        points = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
        decoder = FrameDecoder()
        out = []
        for a, b in zip(points, points[1:], strict=False):
            out += decoder.feed(body[a:b])
        decoder.end()
        self.assertEqual(out, payloads)

    @given(st.binary(max_size=70000))
    def test_roundTrip(self, payload):
        """ckit Fuzz_message: write then read returns the payload."""
        self.assertEqual(decodeAll(encodeFrame(payload)), [payload])

    @given(st.binary(max_size=64))
    def test_garbageNeverCrashes(self, data):
        """Arbitrary bytes give payloads or a FramingError, never anything else."""
        from raftmux.gossip.framing import FramingError
        decoder = FrameDecoder(maxFrameSize=32)
        try:
            decoder.feed(data)
            decoder.end()
        except FramingError:
            pass
        self.assertLessEqual(decoder.buffered, len(data))
