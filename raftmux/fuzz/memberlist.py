"""
Fuzz targets for memberlist's codec: packets (CRC, compound, compressed,
msgpack messages), stream messages, and the LZW decompressor.
"""

from raftmux.fuzz import target
from raftmux.fuzz._support import check, pieces, split
from raftmux.memberlist import lzw
from raftmux.memberlist.messages import (
    DecodeError,
    PushNodeState,
    PushPull,
    UserStream,
    decodePacketMessage,
    ipToBytes,
    stripCrc,
)
from raftmux.memberlist.stream import StreamDecoder, encodeStream

# Captured from Go by the codec tests (go-msgpack's MsgpackHandle, as memberlist encodes).
GOLDEN = [
    "0082a44e6f6465a162a55365714e6f07",
    "0188a44e61636bc3a44e6f6465a163a4506f7274cdffffa55365714e6fcd012caa536f7572636541646472a4"
    "0a000001aa536f757263654e6f6465a161aa536f75726365506f7274cc80a6546172676574b0000000000000"
    "00000000000000000001",
    "0282a75061796c6f6164a26869a55365714e6fce00011170",
    "0b81a55365714e6fccff",
    "0d81a54572726f72a4626f6f6d",
    "0383a446726f6da26e32ab496e6361726e6174696f6e03a44e6f6465a26e31",
    "0486a441646472a47f000001ab496e6361726e6174696f6e01a44d657461c0a44e6f6465a26e31a4506f7274"
    "cd1f0aa356736ea6010502000000",
    "0583a446726f6da26e31ab496e6361726e6174696f6e09a44e6f6465a26e31",
    "0cc2380e8607020010001f0082a44e6f6465a162a55365714e6f070383a446726f6da26e32ab496e6361726e"
    "6174696f6e03a44e6f6465a26e31",
    "0982a4416c676f00a3427566da003a000f08000001c007008248397943a64c2831a5a69489b3f0c08041a48c"
    "c879d346941b19ab92b81913468e9b3074d2bc71334021c3321e630404",
]
MAX_STREAM = 1 << 16


@target("memberlist-packet", """
    A UDP packet (CRC stripped, compound and compressed messages unwrapped):
    only DecodeError for the outer framing, a bad inner message becomes a
    (type, DecodeError) entry; every decoded message re-encodes and decodes
    to itself.""", seeds=lambda: [bytes.fromhex(g) for g in GOLDEN])
def memberlistPacket(data):
    try:
        message = stripCrc(data)
        decoded = decodePacketMessage(message)
    except DecodeError:
        return
    for msgType, value in decoded:
        if isinstance(value, DecodeError):
            continue
        check(msgType is not None, "a message without a type")
        again = decodePacketMessage(value.encode())
        check(again == [(msgType, value)], "round trip changed %r into %r", value, again)


def _streamSeeds():
    nodes = [PushNodeState(name="n%d" % i, addr=ipToBytes("127.0.0.1"), port=7000 + i,
                           meta=b"m" * i, incarnation=i, state=i % 4, vsn=bytes([1, 5, 2, 0, 0, 0]))
             for i in range(3)]
    push = PushPull(join=True, nodes=nodes, userState=b"user-state")
    return [bytes([c]) + encodeStream(m, compress=z)
            for c in (0, 1, 7) for z in (False, True)
            for m in (push, UserStream(b"hello"))] + [b"\x00" + bytes.fromhex(GOLDEN[0])]


@target("memberlist-stream", """
    StreamDecoder (one TCP stream message, maybe compressed): only
    DecodeError; input past maxBytes refused; any chunking gives the same
    message; the message re-encodes (plain and compressed) and decodes to
    itself.""", seeds=_streamSeeds)
def memberlistStream(data):
    control, wire = split(data)

    def decode(chunks):
        decoder = StreamDecoder(maxBytes=MAX_STREAM)
        result = None
        try:
            for chunk in chunks:
                result = decoder.feed(chunk)
                if result is not None:
                    break
        except DecodeError as e:
            return None, type(e)
        return result, None

    whole = decode([wire])
    chunked = decode(pieces(wire, control))
    check(whole == chunked, "chunking changed the outcome: %r vs %r", whole, chunked)
    message = whole[0]
    if message is None:
        return
    for compress in (False, True):
        again = decode([encodeStream(message, compress=compress)])
        check(again == (message, None), "round trip (compress=%s) changed %r into %r",
              compress, message, again)


@target("memberlist-lzw", """
    LZW decompress (Go's compress/lzw, LSB, 8-bit literals): only LZWError;
    output never past maxOutput; compress then decompress is the identity.""",
        seeds=lambda: [lzw.compress(b"hello hello hello"), lzw.compress(b""),
                       lzw.compress(bytes(range(256)) * 4), b"\x00\x01\x02"])
def memberlistLZW(data):
    try:
        out = lzw.decompress(data, maxOutput=4096)
    except lzw.LZWError:
        pass
    else:
        check(len(out) <= 4096, "decompressed %d bytes past the 4096 limit", len(out))
    check(lzw.decompress(lzw.compress(data), maxOutput=len(data)) == data,
          "compress/decompress is not the identity")

