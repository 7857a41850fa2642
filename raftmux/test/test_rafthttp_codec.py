# -*- test-case-name: raftmux.test.test_rafthttp_codec -*-
"""
Tests for L{raftmux.rafthttp.codec}: the plain Message framing and msgappv2
(spec 3.1, 3.2, 14), fed whole, byte by byte, cut anywhere, oversized,
truncated and random.
"""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux import raftpb
from raftmux.rafthttp.codec import (
    LINK_HEARTBEAT,
    MSGAPPV2_LINK_HEARTBEAT,
    READ_BYTES_LIMIT,
    CodecError,
    MalformedMessage,
    MessageDecoder,
    MsgAppV2Decoder,
    MsgAppV2Encoder,
    SizeLimitExceeded,
    UnexpectedEOF,
    UnknownRecordType,
    encodeMessage,
    isLinkHeartbeat,
    linkHeartbeatMessage,
)
from raftmux.raftpb import Entry, Message, encode

E1 = 0x4036B1DB24775EA0
P2 = 0x2737ECEDBF2A9065


def h(text):
    return bytes.fromhex(text)


def message(**fields):
    """A Message; ``from_`` stands for the keyword-named field ``from``."""
    sender = fields.pop("from_", None)
    m = Message(**fields)
    if sender is not None:
        setattr(m, "from", sender)
    return m


def u64(n):
    return struct.pack(">Q", n)


def feed(decoder, data, cuts=()):
    """Feed ``data`` cut at the sorted offsets ``cuts``; collect the messages."""
    out = []
    start = 0
    for cut in list(cuts) + [len(data)]:
        out.extend(decoder.receiveData(data[start:cut]))
        start = cut
    return out


def feedBytewise(decoder, data):
    out = []
    for i in range(len(data)):
        out.extend(decoder.receiveData(data[i:i + 1]))
    return out


def encoded(messages):
    return [encode(m) for m in messages]


# Spec 14.1.
HEARTBEAT = message(type=raftpb.MsgHeartbeat, to=2, from_=1, term=5, commit=3)
HEARTBEAT_FRAMED = h(
    "00 00 00 00 00 00 00 1e 08 08 10 02 18 01 20 05 28 00 30 00 40 03 4a 0a 12 08 0a 02 28 00"
    " 10 00 18 00 50 00 58 00".replace(" ", ""))
REAL_HEARTBEAT_FRAMED = h(
    "00 00 00 00 00 00 00 2e 08 08 10 e5 a0 aa f9 db 9d fb 9b 27 18 a0 bd dd a3 b2 bb ac 9b 40"
    " 20 02 28 00 30 00 40 05 4a 0a 12 08 0a 02 28 00 10 00 18 00 50 00 58 00".replace(" ", ""))
LINK_HEARTBEAT_OBSERVED = h(
    "00 00 00 00 00 00 00 1e 08 08 10 00 18 00 20 00 28 00 30 00 40 00 4a 0a 12 08 0a 02 28 00"
    " 10 00 18 00 50 00 58 00".replace(" ", ""))

# Spec 14.2: the msgappv2 records, in the order a leader sends them.
FULL_APP = message(type=raftpb.MsgApp, to=2, from_=1, term=2, logTerm=1, index=2, commit=2,
                   entries=[Entry(Term=2, Index=3)])
FULL_APP_RECORD = h(
    "02 00 00 00 00 00 00 00 26 08 03 10 02 18 01 20 02 28 01 30 02 3a 06 08 00 10 02 18 03"
    " 40 02 4a 0a 12 08 0a 02 28 00 10 00 18 00 50 00 58 00".replace(" ", ""))
HELLO_APP = message(type=raftpb.MsgApp, to=2, from_=1, term=2, logTerm=2, index=3, commit=3,
                    entries=[Entry(Term=2, Index=4, Data=b"hello")])
HELLO_RECORD = h(
    "01 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 0d 08 00 10 02 18 04 22 05 68 65 6c 6c 6f"
    " 00 00 00 00 00 00 00 03".replace(" ", ""))
COMMIT_APP = message(type=raftpb.MsgApp, to=2, from_=1, term=2, logTerm=2, index=4, commit=4)
COMMIT_RECORD = h("01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 04".replace(" ", ""))


class LinkHeartbeatTests(SynchronousTestCase):
    def test_bytes(self):
        """The message stream's link heartbeat is the 38 bytes etcd sends."""
        self.assertEqual(LINK_HEARTBEAT, LINK_HEARTBEAT_OBSERVED)
        self.assertEqual(encodeMessage(linkHeartbeatMessage()), LINK_HEARTBEAT_OBSERVED)
        self.assertEqual(MSGAPPV2_LINK_HEARTBEAT, b"\x00")

    def test_recognise(self):
        """Only a MsgHeartbeat with From and To both zero is a link heartbeat."""
        self.assertTrue(isLinkHeartbeat(linkHeartbeatMessage()))
        self.assertTrue(isLinkHeartbeat(message(type=raftpb.MsgHeartbeat, term=3)))
        self.assertFalse(isLinkHeartbeat(message(type=raftpb.MsgHeartbeat, to=1)))
        self.assertFalse(isLinkHeartbeat(message(type=raftpb.MsgHeartbeat, from_=1)))
        self.assertFalse(isLinkHeartbeat(message(type=raftpb.MsgHeartbeatResp)))

    def test_fresh(self):
        """Each link heartbeat is a new object: callers may change one."""
        self.assertIsNot(linkHeartbeatMessage(), linkHeartbeatMessage())


class EncodeMessageTests(SynchronousTestCase):
    def test_golden(self):
        """Spec 14.1: the 38-byte framed MsgHeartbeat and the 46-byte real one."""
        self.assertEqual(encodeMessage(HEARTBEAT), HEARTBEAT_FRAMED)
        real = message(type=raftpb.MsgHeartbeat, to=P2, from_=E1, term=2, commit=5)
        self.assertEqual(encodeMessage(real), REAL_HEARTBEAT_FRAMED)


class MessageDecoderTests(SynchronousTestCase):
    """L{MessageDecoder}: etcd's messageDecoder, incrementally."""

    def test_golden(self):
        """The spec's bytes decode to its message, which re-encodes to them."""
        [m] = MessageDecoder().receiveData(REAL_HEARTBEAT_FRAMED)
        self.assertEqual((m.to, getattr(m, "from"), m.term, m.commit), (P2, E1, 2, 5))
        self.assertEqual(encodeMessage(m), REAL_HEARTBEAT_FRAMED)

    def test_several(self):
        """Several messages in one piece all come out, in order."""
        data = LINK_HEARTBEAT + HEARTBEAT_FRAMED + REAL_HEARTBEAT_FRAMED
        out = MessageDecoder().receiveData(data)
        self.assertEqual(b"".join(encodeMessage(m) for m in out), data)

    def test_bytewise(self):
        """One byte at a time gives the same messages; nothing comes early."""
        data = HEARTBEAT_FRAMED + REAL_HEARTBEAT_FRAMED
        decoder = MessageDecoder()
        [first] = feedBytewise(decoder, data[:-1])
        self.assertEqual(encodeMessage(first), HEARTBEAT_FRAMED)
        [last] = decoder.receiveData(data[-1:])
        self.assertEqual(encodeMessage(last), REAL_HEARTBEAT_FRAMED)

    def test_truncatedWaits(self):
        """A partial message yields nothing and is kept until the rest comes."""
        decoder = MessageDecoder()
        self.assertEqual(decoder.receiveData(HEARTBEAT_FRAMED[:20]), [])
        self.assertEqual(decoder.bufferedBytes, 12)
        [m] = decoder.receiveData(HEARTBEAT_FRAMED[20:])
        self.assertEqual(encodeMessage(m), HEARTBEAT_FRAMED)
        self.assertEqual(decoder.bufferedBytes, 0)

    def test_cleanEOF(self):
        """EOF between messages is clean (the peer stays active, spec 2.4)."""
        decoder = MessageDecoder()
        decoder.receiveData(HEARTBEAT_FRAMED)
        decoder.endOfStream()

    def test_unexpectedEOF(self):
        """EOF inside a message, even inside its length, is an error."""
        for cut in (1, 8, 9, len(HEARTBEAT_FRAMED) - 1):
            decoder = MessageDecoder()
            decoder.receiveData(HEARTBEAT_FRAMED[:cut])
            self.assertRaises(UnexpectedEOF, decoder.endOfStream)

    def test_exceedsLimit(self):
        """
        Go's TestMessage: above a lowered limit, decoding fails with etcd's
        error text, as soon as the 8 length bytes are in.
        """
        decoder = MessageDecoder(maxSize=29)
        e = self.assertRaises(SizeLimitExceeded, decoder.receiveData, HEARTBEAT_FRAMED[:8])
        self.assertEqual((e.size, e.limit), (30, 29))
        self.assertIn("rafthttp: error limit exceeded", str(e))
        self.assertEqual(decoder.bufferedBytes, 0)

    def test_atLimit(self):
        """A message exactly at the limit is accepted."""
        [m] = MessageDecoder(maxSize=30).receiveData(HEARTBEAT_FRAMED)
        self.assertEqual(m.commit, 3)

    def test_defaultLimit(self):
        """The default is etcd's readBytesLimit, 512 MiB; one more is refused."""
        self.assertEqual(MessageDecoder().maxSize, READ_BYTES_LIMIT)
        self.assertEqual(READ_BYTES_LIMIT, 512 * 1024 * 1024)
        decoder = MessageDecoder()
        self.assertEqual(decoder.receiveData(u64(READ_BYTES_LIMIT) + b"\x08"), [])
        self.assertRaises(SizeLimitExceeded, MessageDecoder().receiveData,
                          u64(READ_BYTES_LIMIT + 1))

    def test_hugeLength(self):
        """A length of 2^64-1 (garbage) is refused without allocating."""
        self.assertRaises(SizeLimitExceeded, MessageDecoder().receiveData, b"\xff" * 8)

    def test_deadAfterError(self):
        """After an error every call raises it again: the stream is out of step."""
        decoder = MessageDecoder(maxSize=10)
        first = self.assertRaises(SizeLimitExceeded, decoder.receiveData, HEARTBEAT_FRAMED)
        again = self.assertRaises(SizeLimitExceeded, decoder.receiveData, LINK_HEARTBEAT)
        self.assertIs(again, first)

    def test_emptyBody(self):
        """Length 0 is an all-zero Message (MsgHup), as Go's Unmarshal gives."""
        [m] = MessageDecoder().receiveData(u64(0))
        self.assertEqual(m.type, raftpb.MsgHup)

    def test_malformed(self):
        """A body that is not protobuf is L{MalformedMessage}."""
        self.assertRaises(MalformedMessage, MessageDecoder().receiveData, u64(2) + b"\x4a\x0a")

    def test_memoryview(self):
        """Any bytes-like piece is accepted."""
        [m] = MessageDecoder().receiveData(memoryview(HEARTBEAT_FRAMED))
        self.assertEqual(encodeMessage(m), HEARTBEAT_FRAMED)


messageValues = st.builds(
    lambda t, to, frm, term, commit, ctx, ents: message(
        type=t, to=to, from_=frm, term=term, commit=commit, context=ctx,
        entries=[Entry(Term=term, Index=i, Data=d) for i, d in ents]),
    st.integers(0, 18), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
    st.integers(0, 1000), st.integers(0, 1000), st.binary(max_size=16),
    st.lists(st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=64)), max_size=3))


def cutsFor(data):
    return st.lists(st.integers(0, len(data)), max_size=8).map(sorted)


class MessageDecoderPropertyTests(SynchronousTestCase):
    @given(st.lists(messageValues, max_size=5), st.data())
    def test_anyCuts(self, messages, data):
        """However the stream is cut, the same messages come out."""
        stream = b"".join(encodeMessage(m) for m in messages)
        cuts = data.draw(cutsFor(stream))
        decoder = MessageDecoder()
        self.assertEqual(encoded(feed(decoder, stream, cuts)), encoded(messages))
        decoder.endOfStream()

    @given(st.binary(max_size=300), st.data())
    @settings(max_examples=300)
    def test_randomInput(self, stream, data):
        """
        Random bytes give messages or a L{CodecError}, never another
        exception, and the buffer never outgrows the limit.
        """
        decoder = MessageDecoder(maxSize=64)
        try:
            for cut in feedCuts(stream, data.draw(cutsFor(stream))):
                decoder.receiveData(cut)
                self.assertLessEqual(decoder.bufferedBytes, 64)
            decoder.endOfStream()
        except CodecError:
            pass


def feedCuts(data, cuts):
    start = 0
    for cut in list(cuts) + [len(data)]:
        yield data[start:cut]
        start = cut


class MsgAppV2EncoderTests(SynchronousTestCase):
    """L{MsgAppV2Encoder}: etcd's record choice and (term, index) state."""

    def test_golden(self):
        """Spec 14.2: link heartbeat, full App, AppEntries, commit-only."""
        encoder = MsgAppV2Encoder()
        self.assertEqual(encoder.encode(linkHeartbeatMessage()), h("00"))
        self.assertEqual(encoder.encode(FULL_APP), FULL_APP_RECORD)
        self.assertEqual((encoder.term, encoder.index), (2, 3))
        self.assertEqual(encoder.encode(HELLO_APP), HELLO_RECORD)
        self.assertEqual((encoder.term, encoder.index), (2, 4))
        self.assertEqual(encoder.encode(COMMIT_APP), COMMIT_RECORD)
        self.assertEqual(len(COMMIT_RECORD), 17)
        self.assertEqual((encoder.term, encoder.index), (2, 4))

    def test_firstIsFull(self):
        """
        The first MsgApp on a fresh connection is a full App even when it
        would "continue" 0/0 in another term (spec 3.2 [obs]).
        """
        self.assertEqual(MsgAppV2Encoder().encode(HELLO_APP)[:1], b"\x02")

    def test_fullAppWithoutEntries(self):
        """A full App without entries leaves the index at m.Index."""
        encoder = MsgAppV2Encoder()
        encoder.encode(message(type=raftpb.MsgApp, term=3, logTerm=2, index=9))
        self.assertEqual((encoder.term, encoder.index), (3, 9))

    def test_conditions(self):
        """
        AppEntries needs index == m.Index, term == m.LogTerm and
        m.LogTerm == m.Term; each broken condition forces a full App.
        """
        for fields in ({"term": 2, "logTerm": 2, "index": 5},
                       {"term": 3, "logTerm": 3, "index": 4},
                       {"term": 3, "logTerm": 2, "index": 4}):
            encoder = MsgAppV2Encoder()
            encoder.encode(FULL_APP)
            encoder.encode(HELLO_APP)
            record = encoder.encode(message(type=raftpb.MsgApp, **fields))
            self.assertEqual(record[:1], b"\x02", fields)

    def test_termChange(self):
        """After a term change the full App resets the tracked term."""
        encoder = MsgAppV2Encoder()
        encoder.encode(FULL_APP)
        encoder.encode(message(type=raftpb.MsgApp, term=3, logTerm=2, index=3,
                               entries=[Entry(Term=3, Index=4)]))
        self.assertEqual((encoder.term, encoder.index), (3, 4))
        record = encoder.encode(message(type=raftpb.MsgApp, term=3, logTerm=3, index=4))
        self.assertEqual(record[:1], b"\x01")

    def test_onlyMsgApp(self):
        """Other message types do not belong on this stream."""
        encoder = MsgAppV2Encoder()
        self.assertRaises(ValueError, encoder.encode, message(type=raftpb.MsgHeartbeat, to=2))
        self.assertEqual((encoder.term, encoder.index), (0, 0))


class MsgAppV2DecoderTests(SynchronousTestCase):
    """L{MsgAppV2Decoder}: records back into Messages."""

    STREAM = h("00") + FULL_APP_RECORD + HELLO_RECORD + h("00") + COMMIT_RECORD

    def expected(self):
        return [linkHeartbeatMessage(), FULL_APP, HELLO_APP, linkHeartbeatMessage(), COMMIT_APP]

    def test_golden(self):
        """The spec's records give back the messages they were made from."""
        decoder = MsgAppV2Decoder(localID=2, remoteID=1)
        self.assertEqual(encoded(decoder.receiveData(self.STREAM)), encoded(self.expected()))
        self.assertEqual((decoder.term, decoder.index), (2, 4))
        decoder.endOfStream()

    def test_bytewise(self):
        decoder = MsgAppV2Decoder(localID=2, remoteID=1)
        self.assertEqual(encoded(feedBytewise(decoder, self.STREAM)), encoded(self.expected()))

    def test_rebuiltFields(self):
        """
        An AppEntries MsgApp takes From from the remote ID, To from the local
        ID, Term, LogTerm and Index from the state, Commit from the trailer.
        """
        decoder = MsgAppV2Decoder(localID=P2, remoteID=E1)
        decoder.term, decoder.index = 7, 40
        [m] = decoder.receiveData(HELLO_RECORD)
        self.assertEqual(
            (m.type, m.to, getattr(m, "from"), m.term, m.logTerm, m.index, m.commit),
            (raftpb.MsgApp, P2, E1, 7, 7, 40, 3))
        self.assertEqual(encoded(m.entries), [h("08 00 10 02 18 04 22 05 68 65 6c 6c 6f")])
        self.assertEqual(decoder.index, 41)
        self.assertFalse(m.reject or m.rejectHint or m.HasField("context"))
        self.assertEqual(m, Message.FromString(encode(m)))

    def test_commitOnly(self):
        """Count 0: no entries, the index is unchanged, the commit updated."""
        decoder = MsgAppV2Decoder(localID=2, remoteID=1)
        decoder.term, decoder.index = 2, 4
        [m] = decoder.receiveData(COMMIT_RECORD)
        self.assertEqual((len(m.entries), m.index, m.commit, decoder.index), (0, 4, 4, 4))

    def test_fullAppSetsState(self):
        """A full App sets the state to its term and last entry index."""
        decoder = MsgAppV2Decoder(localID=2, remoteID=1)
        decoder.receiveData(FULL_APP_RECORD)
        self.assertEqual((decoder.term, decoder.index), (2, 3))
        body = encode(message(type=raftpb.MsgApp, term=4, logTerm=3, index=8))
        decoder.receiveData(b"\x02" + u64(len(body)) + body)
        self.assertEqual((decoder.term, decoder.index), (4, 8))

    def test_unknownType(self):
        """Type bytes other than 0, 1, 2 are fatal, with etcd's message."""
        for byte in (3, 0x7F, 0xFF):
            e = self.assertRaises(UnknownRecordType, MsgAppV2Decoder(2, 1).receiveData,
                                  bytes([byte]))
            self.assertEqual(str(e), "failed to parse type %d in msgappv2 stream" % (byte,))

    def test_unexpectedEOF(self):
        """EOF inside any record is an error; between records it is clean."""
        for cut in range(1, len(HELLO_RECORD)):
            decoder = MsgAppV2Decoder(2, 1)
            decoder.receiveData(HELLO_RECORD[:cut])
            self.assertRaises(UnexpectedEOF, decoder.endOfStream)
        decoder = MsgAppV2Decoder(2, 1)
        decoder.receiveData(HELLO_RECORD)
        decoder.endOfStream()

    def test_fullAppTooBig(self):
        decoder = MsgAppV2Decoder(2, 1, maxSize=37)
        self.assertRaises(SizeLimitExceeded, decoder.receiveData, FULL_APP_RECORD[:9])

    def test_entryTooBig(self):
        """One entry larger than the limit is refused at its length."""
        decoder = MsgAppV2Decoder(2, 1, maxSize=100)
        self.assertRaises(SizeLimitExceeded, decoder.receiveData,
                          b"\x01" + u64(1) + u64(200))

    def test_entriesAddUp(self):
        """The limit is on the whole record: small entries cannot add up past it."""
        decoder = MsgAppV2Decoder(2, 1, maxSize=80)
        entry = encode(Entry(Term=1, Index=1, Data=b"x" * 10))
        stream = b"\x01" + u64(3) + (u64(len(entry)) + entry) * 3 + u64(0)
        self.assertRaises(SizeLimitExceeded, decoder.receiveData, stream)
        fits = b"\x01" + u64(2) + (u64(len(entry)) + entry) * 2 + u64(0)
        [m] = MsgAppV2Decoder(2, 1, maxSize=80).receiveData(fits)
        self.assertEqual(len(m.entries), 2)

    def test_hugeCount(self):
        """A count that cannot fit in the limit is refused before any entry."""
        decoder = MsgAppV2Decoder(2, 1)
        self.assertRaises(SizeLimitExceeded, decoder.receiveData, b"\x01" + b"\xff" * 8)

    def test_malformedEntry(self):
        self.assertRaises(MalformedMessage, MsgAppV2Decoder(2, 1).receiveData,
                          b"\x01" + u64(1) + u64(2) + b"\x22\x05" + u64(0))

    def test_malformedMessage(self):
        self.assertRaises(MalformedMessage, MsgAppV2Decoder(2, 1).receiveData,
                          b"\x02" + u64(1) + b"\x08")


class MsgAppV2RoundTripTests(SynchronousTestCase):
    """Encoder and decoder together keep their states in step."""

    def test_goSequence(self):
        """
        Go's TestMsgAppV2: link heartbeats, a first full MsgApp, consecutive
        MsgApps, a term change, consecutive again, an empty consecutive one.
        """
        ents = [Entry(Term=1, Index=1, Data=b"some data")]
        msgs = [
            linkHeartbeatMessage(),
            message(type=raftpb.MsgApp, from_=1, to=2, term=1, logTerm=1, index=0,
                    entries=ents, commit=1),
            message(type=raftpb.MsgApp, from_=1, to=2, term=1, logTerm=1, index=1,
                    entries=[Entry(Term=1, Index=2, Data=b"some data")], commit=2),
            message(type=raftpb.MsgApp, from_=1, to=2, term=1, logTerm=1, index=2,
                    entries=[Entry(Term=1, Index=3, Data=b"some data")], commit=3),
            message(type=raftpb.MsgApp, from_=1, to=2, term=2, logTerm=1, index=3,
                    entries=[Entry(Term=2, Index=4, Data=b"some data")], commit=4),
            message(type=raftpb.MsgApp, from_=1, to=2, term=2, logTerm=2, index=4,
                    entries=[Entry(Term=2, Index=5, Data=b"some data")], commit=5),
            message(type=raftpb.MsgApp, from_=1, to=2, term=2, logTerm=2, index=5, commit=5),
            linkHeartbeatMessage(),
        ]
        encoder = MsgAppV2Encoder()
        records = [encoder.encode(m) for m in msgs]
        self.assertEqual([r[:1] for r in records],
                         [b"\x00", b"\x02", b"\x01", b"\x01", b"\x02", b"\x01", b"\x01", b"\x00"])
        decoder = MsgAppV2Decoder(localID=2, remoteID=1)
        self.assertEqual(encoded(feedBytewise(decoder, b"".join(records))), encoded(msgs))

    @given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.booleans(),
                              st.integers(0, 3), st.binary(max_size=20)),
                    max_size=12),
           st.data())
    def test_leaderLike(self, steps, data):
        """
        A stream of MsgApps that mostly continue one another, sometimes jump
        or change term, cut anywhere: every message comes back as sent.
        """
        msgs = []
        term, index = 1, 0
        for termStep, jump, heartbeat, count, payload in steps:
            if heartbeat:
                msgs.append(linkHeartbeatMessage())
            logTerm = term
            term += termStep == 0
            index += jump == 0
            entries = [Entry(Term=term, Index=index + i + 1, Data=payload)
                       for i in range(count)]
            msgs.append(message(type=raftpb.MsgApp, from_=1, to=2, term=term, logTerm=logTerm,
                                index=index, commit=index, entries=entries))
            index += count
        encoder = MsgAppV2Encoder()
        stream = b"".join(encoder.encode(m) for m in msgs)
        decoder = MsgAppV2Decoder(localID=2, remoteID=1)
        out = feed(decoder, stream, data.draw(cutsFor(stream)))
        self.assertEqual(encoded(out), encoded(msgs))
        self.assertEqual((decoder.term, decoder.index), (encoder.term, encoder.index))
        decoder.endOfStream()

    @given(st.binary(max_size=300), st.data())
    @settings(max_examples=300)
    def test_randomInput(self, stream, data):
        """Random bytes give messages or a L{CodecError}, never a crash."""
        decoder = MsgAppV2Decoder(2, 1, maxSize=128)
        try:
            for piece in feedCuts(stream, data.draw(cutsFor(stream))):
                decoder.receiveData(piece)
                self.assertLessEqual(decoder.bufferedBytes, 128)
            decoder.endOfStream()
        except CodecError:
            pass

    @given(st.binary(min_size=1, max_size=100))
    def test_randomAfterValid(self, tail):
        """
        Garbage after good records: the good ones are returned by the calls
        that completed them, before the garbage is looked at.
        """
        decoder = MsgAppV2Decoder(2, 1)
        out = decoder.receiveData(FULL_APP_RECORD)
        self.assertEqual(encoded(out), [encode(FULL_APP)])
        try:
            decoder.receiveData(tail)
        except CodecError:
            pass
