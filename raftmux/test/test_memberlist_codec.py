# -*- test-case-name: raftmux.test.test_memberlist_codec -*-
"""
memberlist wire codec: golden bytes written by Go (go-msgpack with
memberlist's handle, compress/lzw, hash/crc32, captured by a small Go
program built from Debian's sources), round trips, and hypothesis over the
decoders (random and truncated input gives a DecodeError, never another
exception, and bounded work).
"""

import zlib

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.memberlist import lzw
from raftmux.memberlist.messages import (
    Ack,
    Alive,
    Compress,
    Dead,
    DecodeError,
    ErrResp,
    IndirectPing,
    MessageType,
    Nack,
    Ping,
    PushNodeState,
    PushPull,
    PushPullHeader,
    Suspect,
    UserMessage,
    UserMsgHeader,
    UserStream,
    addCrc,
    compressMessage,
    decodePacketMessage,
    ipFromBytes,
    ipToBytes,
    joinHostPort,
    makeCompound,
    splitHostPort,
    stripCrc,
)
from raftmux.memberlist.stream import StreamDecoder, encodeStream

LONG = "a-node-name-that-is-longer-than-thirty-one-bytes"
VSN = bytes([1, 5, 2, 0, 0, 0])

# Captured from Go (go-msgpack 0.5.x MsgpackHandle{}, as memberlist encodes).
GOLDEN = {
    "ping": "0082a44e6f6465a162a55365714e6f07",
    "ping_src": "0085a44e6f6465da0030612d6e6f64652d6e616d652d746861742d69732d6c6f6e6765722d"
                "7468616e2d7468697274792d6f6e652d6279746573a55365714e6fceffffffffaa536f7572"
                "636541646472a47f000001aa536f757263654e6f6465a161aa536f75726365506f7274cd1f0a",
    "indirect": "0188a44e61636bc3a44e6f6465a163a4506f7274cdffffa55365714e6fcd012caa536f7572"
                "636541646472a40a000001aa536f757263654e6f6465a161aa536f75726365506f7274cc80"
                "a6546172676574b000000000000000000000000000000001",
    "ack_nil": "0282a75061796c6f6164c0a55365714e6f01",
    "ack_payload": "0282a75061796c6f6164a26869a55365714e6fce00011170",
    "nack": "0b81a55365714e6fccff",
    "err": "0d81a54572726f72a4626f6f6d",
    "suspect": "0383a446726f6da26e32ab496e6361726e6174696f6e03a44e6f6465a26e31",
    "alive": "0486a441646472a47f000001ab496e6361726e6174696f6e01a44d657461c0a44e6f6465a26e"
             "31a4506f7274cd1f0aa356736ea6010502000000",
    "alive_meta": "0486a441646472b0fe800000000000000000000000000001ab496e6361726e6174696f6e"
                  "ce00010000a44d657461da0028" + "ff" * 40 + "a44e6f6465da0030612d6e6f6465"
                  "2d6e616d652d746861742d69732d6c6f6e6765722d7468616e2d7468697274792d6f6e65"
                  "2d6279746573a4506f727401a356736ea6010502000000",
    "dead": "0583a446726f6da26e31ab496e6361726e6174696f6e09a44e6f6465a26e31",
    "pushpull_header": "0683a44a6f696ec3a54e6f64657302ac5573657253746174654c656ecd012c",
    "pushnode": "87a441646472a47f000001ab496e6361726e6174696f6e02a44d657461a16da44e616d65a2"
                "6e31a4506f7274cd1f0aa5537461746503a356736ea6010502000000",
    "usermsg_header": "0881aa557365724d73674c656e05",
    "compound": "07020010001f0082a44e6f6465a162a55365714e6f070383a446726f6da26e32ab496e6361"
                "726e6174696f6e03a44e6f6465a26e31",
    "crc_compound": "0cc2380e8607020010001f0082a44e6f6465a162a55365714e6f070383a446726f6da26e"
                    "32ab496e6361726e6174696f6e03a44e6f6465a26e31",
    "compress_compound": "0982a4416c676f00a3427566da003a000f08000001c007008248397943a64c2831"
                         "a5a69489b3f0c08041a48cc879d346941b19ab92b81913468e9b3074d2bc7133"
                         "4021c3321e630404",
}

PING = Ping(seqNo=7, node="b")
SUSPECT = Suspect(incarnation=3, node="n1", fromNode="n2")

EXPECTED = {
    "ping": PING,
    "ping_src": Ping(seqNo=0xFFFFFFFF, node=LONG, sourceAddr=ipToBytes("127.0.0.1"),
                     sourcePort=7946, sourceNode="a"),
    "indirect": IndirectPing(seqNo=300, target=ipToBytes("::1"), port=65535, node="c", nack=True,
                             sourceAddr=ipToBytes("10.0.0.1"), sourcePort=128, sourceNode="a"),
    "ack_nil": Ack(seqNo=1),
    "ack_payload": Ack(seqNo=70000, payload=b"hi"),
    "nack": Nack(seqNo=255),
    "err": ErrResp(error="boom"),
    "suspect": SUSPECT,
    "alive": Alive(incarnation=1, node="n1", addr=ipToBytes("127.0.0.1"), port=7946, vsn=VSN),
    "alive_meta": Alive(incarnation=65536, node=LONG, addr=ipToBytes("fe80::1"), port=1,
                        meta=b"\xff" * 40, vsn=VSN),
    "dead": Dead(incarnation=9, node="n1", fromNode="n1"),
    "pushpull_header": PushPullHeader(nodes=2, userStateLen=300, join=True),
    "usermsg_header": UserMsgHeader(userMsgLen=5),
}


class GoldenTests(SynchronousTestCase):
    def test_encodeMatchesGo(self):
        """Each message encodes to exactly the bytes Go wrote."""
        for name, message in EXPECTED.items():
            self.assertEqual(message.encode().hex(), GOLDEN[name], name)

    def test_pushNodeState(self):
        node = PushNodeState(name="n1", addr=ipToBytes("127.0.0.1"), port=7946, meta=b"m",
                             incarnation=2, state=3, vsn=VSN)
        from raftmux.memberlist.messages import packb, unpackOne
        self.assertEqual(packb(node.toWire()).hex(), GOLDEN["pushnode"])
        value, _ = unpackOne(bytes.fromhex(GOLDEN["pushnode"]))
        self.assertEqual(PushNodeState.fromWire(value), node)

    def test_decodeGo(self):
        """Go's bytes decode to the same values."""
        for name, message in EXPECTED.items():
            if name in ("pushpull_header", "usermsg_header"):
                continue
            [(msgType, decoded)] = decodePacketMessage(bytes.fromhex(GOLDEN[name]))
            self.assertEqual(msgType, message.TYPE)
            self.assertEqual(decoded, message, name)

    def test_compound(self):
        data = makeCompound([PING.encode(), SUSPECT.encode()])
        self.assertEqual(data.hex(), GOLDEN["compound"])
        self.assertEqual([m for _, m in decodePacketMessage(data)], [PING, SUSPECT])

    def test_crc(self):
        compound = bytes.fromhex(GOLDEN["compound"])
        self.assertEqual(addCrc(compound).hex(), GOLDEN["crc_compound"])
        self.assertEqual(stripCrc(bytes.fromhex(GOLDEN["crc_compound"])), compound)
        broken = bytearray(bytes.fromhex(GOLDEN["crc_compound"]))
        broken[-1] ^= 1
        self.assertRaises(DecodeError, stripCrc, bytes(broken))

    def test_compress(self):
        """Our LZW writer and compress struct produce Go's bytes; Go's decode."""
        compound = bytes.fromhex(GOLDEN["compound"])
        self.assertEqual(compressMessage(compound).hex(), GOLDEN["compress_compound"])
        self.assertEqual([m for _, m in decodePacketMessage(
            bytes.fromhex(GOLDEN["compress_compound"]))], [PING, SUSPECT])

    def test_ipv6MappedIsIPv4(self):
        self.assertEqual(ipToBytes("::ffff:10.1.2.3"), bytes([10, 1, 2, 3]))
        self.assertEqual(ipFromBytes(bytes(10) + b"\xff\xff" + bytes([10, 1, 2, 3])), "10.1.2.3")
        self.assertEqual(ipFromBytes(b"\x01"), "")

    def test_hostPort(self):
        self.assertEqual(joinHostPort("::1", 5), "[::1]:5")
        self.assertEqual(splitHostPort("[::1]:5"), ("::1", 5))
        self.assertEqual(splitHostPort("1.2.3.4:7946"), ("1.2.3.4", 7946))
        for bad in ("1.2.3.4", "::1:5", "[::1]5", "a:70000", "a:x"):
            self.assertRaises(ValueError, splitHostPort, bad)


class LenientDecodeTests(SynchronousTestCase):
    def test_unknownKeysAndNil(self):
        from raftmux.memberlist.messages import packb
        body = packb({"SeqNo": 5, "Extra": [1, 2], "Node": None})
        [(_, m)] = decodePacketMessage(b"\x00" + body)
        self.assertEqual(m, Ping(seqNo=5, node=""))

    def test_arrayStruct(self):
        from raftmux.memberlist.messages import packb
        [(_, m)] = decodePacketMessage(b"\x03" + packb([4, "x", "y", "ignored"]))
        self.assertEqual(m, Suspect(incarnation=4, node="x", fromNode="y"))

    def test_binAndStr8Accepted(self):
        import msgpack
        body = msgpack.packb({"SeqNo": 2, "Payload": b"\x00" * 40}, use_bin_type=True)
        [(_, m)] = decodePacketMessage(b"\x02" + body)
        self.assertEqual(m, Ack(seqNo=2, payload=b"\x00" * 40))

    def test_outOfRange(self):
        from raftmux.memberlist.messages import packb
        for body in ({"SeqNo": 1 << 32}, {"SeqNo": -1}, {"SeqNo": "x"}, {"SeqNo": True}, [1.5]):
            [(_, m)] = decodePacketMessage(b"\x0b" + packb(body))
            self.assertIsInstance(m, DecodeError)

    def test_badPartKeepsSiblings(self):
        data = makeCompound([b"\x00\xc1", SUSPECT.encode(), b"\x63"])
        out = decodePacketMessage(data)
        self.assertIsInstance(out[0][1], DecodeError)
        self.assertEqual(out[1][1], SUSPECT)
        self.assertIsInstance(out[2][1], DecodeError)

    def test_truncatedCompoundCounted(self):
        data = makeCompound([PING.encode(), SUSPECT.encode()])[:-3]
        out = decodePacketMessage(data)
        self.assertEqual(out[0][1], PING)
        self.assertIsInstance(out[1][1], DecodeError)

    def test_nestingBounded(self):
        data = PING.encode()
        for _ in range(10):
            data = makeCompound([data])
        out = decodePacketMessage(data)
        self.assertIsInstance(out[-1][1], DecodeError)

    def test_compressionBomb(self):
        """A small packet that would expand past the cap is refused."""
        data = compressMessage(b"\x08" + b"\x00" * (3 << 20))
        self.assertLess(len(data), 40000)
        [(_, m)] = decodePacketMessage(data)
        self.assertIsInstance(m, DecodeError)

    def test_userMessage(self):
        [(t, m)] = decodePacketMessage(UserMessage(b"hello").encode())
        self.assertEqual((t, m), (MessageType.USER, UserMessage(b"hello")))


class StreamTests(SynchronousTestCase):
    def sample(self):
        nodes = [PushNodeState(name="n%d" % i, addr=ipToBytes("127.0.0.1"), port=7000 + i,
                               meta=b"m" * i, incarnation=i, state=i % 4, vsn=VSN)
                 for i in range(5)]
        return PushPull(join=True, nodes=nodes, userState=b"user-state")

    def test_pushPullByteAtATime(self):
        for compress in (False, True):
            msg = self.sample()
            data = encodeStream(msg, compress=compress) + b"trailing"
            decoder = StreamDecoder()
            results = [decoder.feed(data[i:i + 1]) for i in range(len(data))]
            self.assertEqual([r for r in results if r is not None][0], msg)
            self.assertIsNone(results[len(data) - len(b"trailing") - 2])

    def test_goHeaderIsOurs(self):
        data = PushPull(join=True, nodes=[], userState=b"").encode()
        self.assertTrue(data.startswith(bytes.fromhex("0683a44a6f696ec3a54e6f64657300")))

    def test_simpleTypes(self):
        for msg in (PING, Ack(seqNo=3), ErrResp(error="no"), UserStream(b"abc")):
            self.assertEqual(StreamDecoder().feed(encodeStream(msg)), msg)
            self.assertEqual(StreamDecoder().feed(encodeStream(msg, compress=True)), msg)
        self.assertEqual(encodeStream(UserStream(b"abc")).hex(), GOLDEN["usermsg_header"][:-2] +
                         "03616263")

    def test_oversizedDeclaredLength(self):
        header = PushPullHeader(nodes=0, userStateLen=1 << 30).encode()
        self.assertRaises(DecodeError, StreamDecoder(maxBytes=1 << 20).feed, header)
        header = PushPullHeader(nodes=1 << 28, userStateLen=0).encode()
        self.assertRaises(DecodeError, StreamDecoder(maxBytes=1 << 20).feed, header)
        d = StreamDecoder(maxBytes=100)
        self.assertRaises(DecodeError, d.feed, b"\x08\x81" + b"\x00" * 200)
        self.assertRaises(DecodeError, d.feed, b"")  # stays failed

    def test_badTypes(self):
        for data in (b"\x0a\x00\x00", b"\x07", b"\x63", b"\x09\x09"):
            self.assertRaises(DecodeError, StreamDecoder().feed, data)

    def test_truncatedCompressed(self):
        inner = self.sample().encode()[:-4]
        self.assertRaises(DecodeError, StreamDecoder().feed, compressMessage(inner))


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=600))
    def test_packetDecoderNeverCrashes(self, data):
        try:
            out = decodePacketMessage(stripCrc(data)) if data else []
        except DecodeError:
            return
        for _, m in out:
            self.assertNotIsInstance(m, Exception.__class__)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=400), st.integers(1, 50))
    def test_streamDecoderNeverCrashes(self, data, chunk):
        decoder = StreamDecoder(maxBytes=4096)
        try:
            for i in range(0, len(data), chunk):
                decoder.feed(data[i:i + chunk])
        except DecodeError:
            pass

    @settings(max_examples=100, deadline=None)
    @given(st.integers(0, 200))
    def test_truncatedGoldenPackets(self, cut):
        for hexdata in GOLDEN.values():
            data = bytes.fromhex(hexdata)
            try:
                decodePacketMessage(stripCrc(data[:cut]) if cut else b"")
            except DecodeError:
                pass

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=3000))
    def test_lzwRoundTrip(self, data):
        self.assertEqual(lzw.decompress(lzw.compress(data), len(data)), data)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_lzwRandom(self, data):
        try:
            lzw.decompress(data, 10000)
        except lzw.LZWError:
            pass

    @settings(max_examples=100, deadline=None)
    @given(st.integers(0, 0xFFFFFFFF), st.text(max_size=40), st.binary(max_size=100),
           st.integers(0, 0xFFFF))
    def test_roundTrip(self, n, name, blob, port):
        for m in (Alive(incarnation=n, node=name, addr=blob, port=port, meta=blob, vsn=VSN),
                  Dead(incarnation=n, node=name, fromNode=name),
                  Ack(seqNo=n, payload=blob), Compress(buf=blob)):
            data = m.encode()
            [(_, back)] = decodePacketMessage(addCrc(data)[5:]) if m.TYPE != 9 else [(9, m)]
            self.assertEqual(back, m)
            self.assertEqual(stripCrc(addCrc(data)), data)
            self.assertEqual(zlib.crc32(data), int.from_bytes(addCrc(data)[1:5], "big"))
