# -*- test-case-name: raftmux.test.test_rafthttp_codec_snapshot -*-
"""
Tests for L{raftmux.rafthttp.snapshot_codec}: the body of POST
/raft/snapshot (spec 1.8, 3.3), in any pieces, with bounded memory.
"""

import io
import struct
import tracemalloc

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux import raftpb
from raftmux.rafthttp.codec import (
    CodecError,
    MalformedMessage,
    SizeLimitExceeded,
    UnexpectedEOF,
    encodeMessage,
)
from raftmux.rafthttp.snapshot_codec import (
    SnapshotBodyDecoder,
    SnapshotData,
    SnapshotMessage,
    WrongMessageType,
    encodeSnapshotHead,
    snapshotBody,
)
from raftmux.raftpb import ConfState, Message, Snapshot, SnapshotMetadata, encode

E1 = 0x4036B1DB24775EA0
P2 = 0x2737ECEDBF2A9065


def msgSnap(data=b'{"Root":{}}', index=7206, term=2):
    """A MsgSnap shaped like the one seen in spec 3.3, from e1 to p2."""
    m = Message(type=raftpb.MsgSnap, to=P2, term=2, snapshot=Snapshot(
        data=data, metadata=SnapshotMetadata(
            conf_state=ConfState(voters=[P2, E1]), index=index, term=term)))
    setattr(m, "from", E1)
    return m


def collect(events):
    """(the messages, the database bytes) of a list of events."""
    messages = [e.message for e in events if isinstance(e, SnapshotMessage)]
    database = b"".join(e.data for e in events if isinstance(e, SnapshotData))
    return messages, database


class EncodeTests(SynchronousTestCase):
    def test_head(self):
        """The head is the plain framing of the MsgSnap."""
        m = msgSnap()
        head = encodeSnapshotHead(m)
        self.assertEqual(head, encodeMessage(m))
        self.assertEqual(struct.unpack(">Q", head[:8])[0], len(encode(m)))

    def test_headOnlyMsgSnap(self):
        self.assertRaises(ValueError, encodeSnapshotHead, Message(type=raftpb.MsgApp))

    def test_body(self):
        """L{snapshotBody} yields the head, then the database in pieces."""
        m = msgSnap()
        database = bytes(range(256)) * 10
        pieces = list(snapshotBody(m, io.BytesIO(database), chunkSize=1000))
        self.assertEqual(pieces[0], encodeSnapshotHead(m))
        self.assertEqual([len(p) for p in pieces[1:]], [1000, 1000, 560])
        self.assertEqual(b"".join(pieces[1:]), database)

    def test_bodyExactSize(self):
        """With the size given, the database must be exactly that long."""
        m = msgSnap()
        self.assertEqual(b"".join(snapshotBody(m, io.BytesIO(b"abc"), size=3)),
                         encodeSnapshotHead(m) + b"abc")
        short = snapshotBody(m, io.BytesIO(b"ab"), size=3)
        self.assertRaises(ValueError, list, short)
        long = snapshotBody(m, io.BytesIO(b"abcd"), size=3)
        self.assertRaises(ValueError, list, long)


class DecoderTests(SynchronousTestCase):
    def body(self, database=b"bbolt-db-bytes" * 100):
        return encodeSnapshotHead(msgSnap()) + database, database

    def test_whole(self):
        """One piece: the MsgSnap first, then the rest as database bytes."""
        data, database = self.body()
        decoder = SnapshotBodyDecoder()
        events = decoder.receiveData(data)
        self.assertIsInstance(events[0], SnapshotMessage)
        messages, got = collect(events)
        self.assertEqual([encode(m) for m in messages], [encode(msgSnap())])
        self.assertEqual(got, database)
        self.assertEqual(decoder.endOfBody(), len(database))
        self.assertEqual(decoder.message.snapshot.metadata.index, 7206)

    def test_bytewise(self):
        data, database = self.body(b"0123456789")
        decoder = SnapshotBodyDecoder()
        events = []
        for i in range(len(data)):
            events.extend(decoder.receiveData(data[i:i + 1]))
        messages, got = collect(events)
        self.assertEqual(len(messages), 1)
        self.assertEqual(got, database)
        self.assertEqual([type(e) for e in events[:2]], [SnapshotMessage, SnapshotData])

    @given(st.binary(max_size=300), st.lists(st.integers(0, 10**6), max_size=6))
    def test_anyCuts(self, database, cuts):
        """However the body is cut, the same message and database come out."""
        data = encodeSnapshotHead(msgSnap()) + database
        decoder = SnapshotBodyDecoder()
        events = []
        start = 0
        for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
            events.extend(decoder.receiveData(data[start:cut]))
            start = cut
        messages, got = collect(events)
        self.assertEqual([encode(m) for m in messages], [encode(msgSnap())])
        self.assertEqual(got, database)
        self.assertEqual(decoder.endOfBody(), len(database))

    def test_emptyDatabase(self):
        """A body that is only the head decodes, with 0 database bytes."""
        decoder = SnapshotBodyDecoder()
        events = decoder.receiveData(encodeSnapshotHead(msgSnap()))
        self.assertEqual([type(e) for e in events], [SnapshotMessage])
        self.assertEqual(decoder.endOfBody(), 0)

    def test_truncatedHead(self):
        """A body that ends inside the head is L{UnexpectedEOF}."""
        head = encodeSnapshotHead(msgSnap())
        for cut in (0, 5, 8, len(head) - 1):
            decoder = SnapshotBodyDecoder()
            self.assertEqual(decoder.receiveData(head[:cut]), [])
            self.assertRaises(UnexpectedEOF, decoder.endOfBody)

    def test_wrongType(self):
        """Spec 1.8: anything but MsgSnap is refused (400 wrong raft message type)."""
        decoder = SnapshotBodyDecoder()
        e = self.assertRaises(WrongMessageType, decoder.receiveData,
                              encodeMessage(Message(type=raftpb.MsgApp)) + b"db")
        self.assertEqual(e.messageType, raftpb.MsgApp)
        self.assertRaises(WrongMessageType, decoder.receiveData, b"more")

    def test_tooLong(self):
        """A length above the limit fails as soon as it is read."""
        decoder = SnapshotBodyDecoder(maxMessageSize=100)
        self.assertRaises(SizeLimitExceeded, decoder.receiveData, struct.pack(">Q", 101))

    def test_asciiGarbage(self):
        """
        A body of text (a huge length prefix, spec Surprise 4) is a clean
        error here rather than etcd's panic.
        """
        self.assertRaises(SizeLimitExceeded, SnapshotBodyDecoder().receiveData,
                          b"hello, world")

    def test_malformed(self):
        self.assertRaises(MalformedMessage, SnapshotBodyDecoder().receiveData,
                          struct.pack(">Q", 2) + b"\x4a\x0a")

    def test_boundedMemory(self):
        """
        A 64 MiB database goes through while the decoder allocates next to
        nothing: its pieces are handed on, never gathered or kept.
        """
        decoder = SnapshotBodyDecoder()
        decoder.receiveData(encodeSnapshotHead(msgSnap()))
        tracemalloc.start()
        try:
            total = 0
            for i in range(1024):
                for event in decoder.receiveData(bytes([i % 256]) * 65536):
                    total += len(event.data)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertEqual(total, 64 * 1024 * 1024)
        self.assertEqual(decoder.databaseSize, total)
        self.assertLess(peak, 512 * 1024)

    @given(st.binary(max_size=200))
    def test_randomInput(self, data):
        """Random bodies give events or a L{CodecError}, never a crash."""
        decoder = SnapshotBodyDecoder(maxMessageSize=1000)
        try:
            decoder.receiveData(data)
            decoder.endOfBody()
        except CodecError:
            pass
