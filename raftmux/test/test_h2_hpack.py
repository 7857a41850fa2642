# -*- test-case-name: raftmux.test.test_h2_hpack -*-
"""
The shell's caching HPACK encoder: whatever it encodes, hpack's own decoder
reads back exactly, block after block (a decoder keeps state), through
table size changes; repeated fields end up indexed; secrets never enter
the table.
"""

from hpack import Decoder, Encoder
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.h2._hpack import CachingDecoder, CachingEncoder, encodeInteger

names = st.sampled_from([b":method", b":path", b":authority", b"content-type",
                         b"content-length", b"user-agent", b"x-custom", b"cookie",
                         b"authorization", b"accept"]) | st.binary(min_size=1, max_size=20)
values = st.sampled_from([b"GET", b"POST", b"/", b"/index.html", b"200", b"gzip, deflate",
                          b"application/grpc", b""]) | st.binary(max_size=300)
blocks = st.lists(st.lists(st.tuples(names, values), max_size=12), min_size=1, max_size=20)


class RoundTripTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(blocks, st.lists(st.integers(0, 8192), max_size=3))
    def test_decoderReadsWhatWasEncoded(self, sequence, sizes):
        """Any blocks, any table resizes between them: the decoder reads them back."""
        encoder, decoder = CachingEncoder(cacheSize=16), Decoder()
        for i, block in enumerate(sequence):
            if sizes and i == len(sequence) // 2:
                for size in sizes:
                    encoder.header_table_size = size
                decoder.max_allowed_table_size = max(sizes + [4096])
            self.assertEqual(decoder.decode(encoder.encode(block), raw=True), block)
            self.assertEqual(decoder.header_table.dynamic_entries,
                             type(decoder.header_table.dynamic_entries)(
                                 encoder.dynamicEntries))

    def test_repeatedFieldsBecomeIndexes(self):
        """The second time a field is sent it is inserted; from the third it is one byte."""
        encoder = CachingEncoder()
        block = [(b":method", b"POST"), (b":path", b"/api/v1/ckit/transport/message"),
                 (b"content-type", b"application/x.ckit")]
        first, second, third = (encoder.encode(block) for _ in range(3))
        self.assertEqual(first[:1], b"\x83")  # POST is static index 3
        self.assertEqual(len(third), 3)
        self.assertEqual(third, encoder.encode(block))
        self.assertGreater(len(second), len(third))

    def test_secretsNeverIndexed(self):
        encoder = CachingEncoder()
        for _ in range(3):
            data = encoder.encode([(b"authorization", b"Bearer secret")])
        self.assertEqual(encoder.dynamicEntries, [])
        self.assertEqual(data[0] & 0xF0, 0x10)  # never-indexed literal

    def test_fullTableStopsInserting(self):
        """Entries are never evicted by us: once the table is full, literals."""
        encoder, decoder = CachingEncoder(), Decoder()
        for i in range(200):
            block = [(b"x-field-%d" % (i,), b"v" * 40)] * 2
            self.assertEqual(decoder.decode(encoder.encode(block), raw=True), block)
        size = sum(32 + len(n) + len(v) for n, v in encoder.dynamicEntries)
        self.assertLessEqual(size, 4096)

    def test_sizeUpdateSignalled(self):
        """A peer lowering SETTINGS_HEADER_TABLE_SIZE gets a size update first (RFC 7541 4.2)."""
        encoder = CachingEncoder()
        encoder.encode([(b"x", b"1")])
        encoder.encode([(b"x", b"1")])
        encoder.header_table_size = 0
        data = encoder.encode([(b"x", b"1")])
        self.assertEqual(data[:1], encodeInteger(0, 5, 0x20))
        self.assertEqual(encoder.dynamicEntries, [])
        self.assertEqual(Decoder().decode(data, raw=True), [(b"x", b"1")])

    def test_integers(self):
        """RFC 7541 C.1's examples."""
        self.assertEqual(encodeInteger(10, 5), b"\x0a")
        self.assertEqual(encodeInteger(1337, 5), b"\x1f\x9a\x0a")
        self.assertEqual(encodeInteger(42, 8), b"\x2a")


class DecoderCacheTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(0, 5), min_size=1, max_size=40), blocks,
           st.sampled_from([0, 64, 256, 4096]))
    def test_sameAsHpacks(self, order, pool, size):
        """
        Blocks from hpack's own (indexing) encoder, repeated in any order,
        the table resized midway: the caching decoder reads what hpack's does.
        """
        encoder, plain, caching = Encoder(), Decoder(), CachingDecoder()
        for i, pick in enumerate(order):
            if i == len(order) // 2:
                encoder.header_table_size = size
            data = encoder.encode(pool[pick % len(pool)])
            self.assertEqual(caching.decode(data, raw=True), plain.decode(data, raw=True))

    def test_repeatedBlockFromMemory(self):
        """Once the fields are in the table, the same block is not decoded again."""
        decoded = []

        class Counting(Decoder):
            def decode(self, data, raw=False):
                decoded.append(data)
                return Decoder.decode(self, data, raw)

        class Caching(CachingDecoder, Counting):
            pass

        encoder, decoder = CachingEncoder(), Caching()
        block = [(b":status", b"200"), (b"content-type", b"text/plain")]
        blocks = [encoder.encode(block) for _ in range(6)]
        for data in blocks:
            self.assertEqual(decoder.decode(data, raw=True), block)
        self.assertEqual(blocks[2:], [blocks[2]] * 4)
        self.assertEqual(len(decoded), 3)  # literal, insertion, indexed; then from memory
