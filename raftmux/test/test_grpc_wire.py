# -*- test-case-name: raftmux.test.test_grpc_wire -*-
"""
gRPC's wire pieces, sans-IO: the message codec (split anywhere, oversized,
truncated, random bytes), ``grpc-timeout``, ``grpc-message``
percent-encoding, metadata and the status fields.
"""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.grpc.status import Code, GRPCError, codeForHTTPStatus, codeForReset
from raftmux.grpc.wire import (
    MessageDecoder,
    decodeMetadata,
    encodeMessage,
    encodeMetadata,
    encodeTimeout,
    isGRPCContentType,
    parseTimeout,
    percentDecode,
    percentEncode,
    readStatus,
    statusHeaders,
)


def _split(data, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = []
    last = 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


class MessageDecoderTests(SynchronousTestCase):
    def test_oneMessage(self):
        self.assertEqual(MessageDecoder().feed(encodeMessage(b"abc")), [(0, b"abc")])

    def test_emptyMessage(self):
        decoder = MessageDecoder()
        self.assertEqual(decoder.feed(encodeMessage(b"")), [(0, b"")])
        self.assertTrue(decoder.atBoundary)

    def test_compressedFlagReported(self):
        data = b"\x01" + struct.pack(">I", 2) + b"xy"
        self.assertEqual(MessageDecoder().feed(data), [(1, b"xy")])

    @given(st.lists(st.binary(max_size=300), max_size=8),
           st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
    @settings(max_examples=300)
    def test_splitAnywhere(self, payloads, cuts):
        """However the bytes are split, the same messages come out, in order."""
        data = b"".join(encodeMessage(p) for p in payloads)
        decoder = MessageDecoder()
        out = []
        for piece in _split(data, cuts):
            out.extend(p for _, p in decoder.feed(piece))
        self.assertEqual(out, payloads)
        self.assertTrue(decoder.atBoundary)
        self.assertEqual(decoder.buffered, 0)

    @given(st.binary(min_size=1, max_size=200))
    def test_truncatedIsNotAtBoundary(self, payload):
        data = encodeMessage(payload)
        for cut in range(1, len(data)):
            decoder = MessageDecoder()
            self.assertEqual(decoder.feed(data[:cut]), [])
            self.assertFalse(decoder.atBoundary)

    def test_oversizedRefusedBeforePayload(self):
        """The declared length alone is refused: nothing of the payload is kept."""
        decoder = MessageDecoder(maxSize=10)
        header = b"\x00" + struct.pack(">I", 11)
        with self.assertRaises(GRPCError) as caught:
            decoder.feed(encodeMessage(b"ok") + header)
        self.assertEqual(caught.exception.code, Code.RESOURCE_EXHAUSTED)
        self.assertEqual(caught.exception.message,
                         "grpc: received message larger than max (11 vs. 10)")
        self.assertEqual(caught.exception.decoded, [(0, b"ok")])
        self.assertEqual(decoder.buffered, 0)
        # Dead after the error.
        with self.assertRaises(GRPCError):
            decoder.feed(encodeMessage(b""))

    def test_maximumAccepted(self):
        decoder = MessageDecoder(maxSize=10)
        self.assertEqual(decoder.feed(encodeMessage(b"x" * 10)), [(0, b"x" * 10)])

    def test_hugeDeclaredLength(self):
        decoder = MessageDecoder()
        with self.assertRaises(GRPCError):
            decoder.feed(b"\x00\xff\xff\xff\xff")

    @given(st.binary(max_size=2000))
    @settings(max_examples=300)
    def test_randomBytes(self, data):
        """Random input: messages or RESOURCE_EXHAUSTED, never another exception;
        what is kept never exceeds the limit plus a prefix."""
        decoder = MessageDecoder(maxSize=64)
        try:
            for piece in _split(data, [7, 100, 513]):
                for _flag, payload in decoder.feed(piece):
                    self.assertLessEqual(len(payload), 64)
                self.assertLessEqual(decoder.buffered, 64 + 5)
        except GRPCError as e:
            self.assertEqual(e.code, Code.RESOURCE_EXHAUSTED)


class TimeoutTests(SynchronousTestCase):
    def test_units(self):
        self.assertEqual(parseTimeout(b"1H"), 3600.0)
        self.assertEqual(parseTimeout(b"2M"), 120.0)
        self.assertEqual(parseTimeout(b"3S"), 3.0)
        self.assertAlmostEqual(parseTimeout(b"250m"), 0.25)
        self.assertAlmostEqual(parseTimeout(b"99999999u"), 99.999999)
        self.assertAlmostEqual(parseTimeout(b"5n"), 5e-9)

    def test_malformed(self):
        for value in (b"", b"S", b"1", b"123456789S", b"1x", b"-1S", b"1.5S", b" 1S", b"1s"):
            self.assertRaises(ValueError, parseTimeout, value)

    @given(st.floats(min_value=1e-9, max_value=1e7, allow_nan=False))
    def test_roundTrip(self, seconds):
        """Encoded, a timeout is never shorter, and at most one unit step longer."""
        value = encodeTimeout(seconds)
        self.assertLessEqual(len(value), 9)
        back = parseTimeout(value)
        self.assertGreaterEqual(back, seconds * (1 - 1e-9))
        self.assertLessEqual(back, seconds * 1.0001 + 1e-9)

    def test_encodedForms(self):
        self.assertEqual(encodeTimeout(5), b"5000000u")
        self.assertEqual(encodeTimeout(0.25), b"250000u")
        self.assertEqual(encodeTimeout(1e-9), b"1n")
        self.assertEqual(encodeTimeout(1e6), b"1000000S")


class PercentEncodingTests(SynchronousTestCase):
    def test_plainUnchanged(self):
        self.assertEqual(percentEncode("etcdserver: key not found"), b"etcdserver: key not found")

    def test_escaped(self):
        self.assertEqual(percentEncode("50% ✓\n"), b"50%25 %E2%9C%93%0A")
        self.assertEqual(percentDecode(b"50%25 %E2%9C%93%0A"), "50% ✓\n")

    def test_malformedKept(self):
        self.assertEqual(percentDecode(b"100%"), "100%")
        self.assertEqual(percentDecode(b"%zz%4"), "%zz%4")

    @given(st.text())
    def test_roundTrip(self, text):
        encoded = percentEncode(text)
        self.assertTrue(all(0x20 <= b <= 0x7E for b in encoded))
        self.assertEqual(percentDecode(encoded), text)

    @given(st.binary())
    def test_decodeAnything(self, value):
        self.assertIsInstance(percentDecode(value), str)


class MetadataTests(SynchronousTestCase):
    def test_roundTrip(self):
        headers = encodeMetadata([("Key", "value"), ("trace-bin", b"\x00\x01\xff"),
                                  ("trace-bin", b"")])
        self.assertEqual(headers, [(b"key", b"value"), (b"trace-bin", b"AAH/"),
                                   (b"trace-bin", b"")])
        self.assertEqual(decodeMetadata([(b":path", b"/x")] + headers + [
            (b"content-type", b"application/grpc"), (b"grpc-timeout", b"1S")]),
            [("key", "value"), ("trace-bin", b"\x00\x01\xff"), ("trace-bin", b"")])

    def test_paddingOptional(self):
        self.assertEqual(decodeMetadata([(b"a-bin", b"AAE="), (b"b-bin", b"AAE")]),
                         [("a-bin", b"\x00\x01"), ("b-bin", b"\x00\x01")])

    def test_badBinary(self):
        self.assertRaises(ValueError, decodeMetadata, [(b"a-bin", b"!!!")])

    def test_badKeysAndValues(self):
        for pairs in ([("", "x")], [("sp ace", "x")], [("grpc-status", "0")],
                      [("key", "line\nbreak")], [("key", "é")]):
            self.assertRaises((ValueError, UnicodeEncodeError), encodeMetadata, pairs)

    @given(st.lists(st.tuples(st.from_regex(r"\A[a-z0-9_.-]{1,20}\Z"), st.binary(max_size=40)),
                    max_size=6))
    def test_binaryRoundTrip(self, pairs):
        pairs = [(k + "-bin", v) for k, v in pairs]
        self.assertEqual(decodeMetadata(encodeMetadata(pairs)), pairs)


class StatusTests(SynchronousTestCase):
    def test_ok(self):
        self.assertEqual(statusHeaders(), [(b"grpc-status", b"0")])
        self.assertEqual(readStatus([(b"grpc-status", b"0")]), (0, "", None, []))

    def test_error(self):
        headers = statusHeaders(Code.NOT_FOUND, "lease 5% gone", b"\x08\x05",
                                [("why", "because")])
        self.assertEqual(headers, [(b"grpc-status", b"5"), (b"grpc-message", b"lease 5%25 gone"),
                                   (b"grpc-status-details-bin", b"CAU"), (b"why", b"because")])
        self.assertEqual(readStatus(headers), (5, "lease 5% gone", b"\x08\x05",
                                               [("why", "because")]))

    def test_malformedStatus(self):
        self.assertEqual(readStatus([(b"grpc-status", b"x")])[0], None)
        self.assertEqual(readStatus([])[0], None)
        self.assertEqual(readStatus([(b"grpc-status", b"9999999")])[0], None)

    def test_contentTypes(self):
        for value in (b"application/grpc", b"application/grpc+proto",
                      b"application/grpc;charset=utf-8"):
            self.assertTrue(isGRPCContentType(value))
        for value in (None, b"application/grpc-web", b"application/grpcx", b"text/plain",
                      b"application/json"):
            self.assertFalse(isGRPCContentType(value))

    def test_mappings(self):
        self.assertEqual(codeForHTTPStatus(404), Code.UNIMPLEMENTED)
        self.assertEqual(codeForHTTPStatus(503), Code.UNAVAILABLE)
        self.assertEqual(codeForHTTPStatus(500), Code.UNKNOWN)
        self.assertEqual(codeForReset(8), Code.CANCELLED)
        self.assertEqual(codeForReset(7), Code.UNAVAILABLE)
        self.assertEqual(codeForReset(2), Code.INTERNAL)

    def test_errorText(self):
        self.assertEqual(str(GRPCError(Code.NOT_FOUND, "gone")), "NOT_FOUND: gone")
        self.assertEqual(GRPCError(5).code, Code.NOT_FOUND)
        self.assertEqual(str(GRPCError(99, "x")), "99: x")
