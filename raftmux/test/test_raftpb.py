# -*- test-case-name: raftmux.test.test_raftpb -*-
"""
Tests for L{raftmux.raftpb}: the schema matches etcd 3.4's raft.proto, and
L{encode} gives gogoproto's bytes (spec sections 9 and 14).
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux import raftpb
from raftmux.raftpb import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeV2,
    ConfState,
    DecodeError,
    Entry,
    HardState,
    Message,
    Snapshot,
    SnapshotMetadata,
    encode,
    normalize,
    raft_pb2,
)

E1 = 0x4036B1DB24775EA0
P2 = 0x2737ECEDBF2A9065

EMPTY_SNAPSHOT_FIELD = "4a 0a 12 08 0a 02 28 00 10 00 18 00"


def h(text):
    """Bytes from the spec's spaced hex."""
    return bytes.fromhex(text.replace("|", " "))


def message(**fields):
    """A Message; ``from_`` stands for the keyword-named field ``from``."""
    sender = fields.pop("from_", None)
    m = Message(**fields)
    if sender is not None:
        setattr(m, "from", sender)
    return m


# (description, message, etcd's bytes): spec 14.1 and 14.2, protobuf only.
GOLDEN_MESSAGES = [
    ("14.1 MsgHeartbeat",
     message(type=raftpb.MsgHeartbeat, to=2, from_=1, term=5, commit=3),
     "08 08 10 02 18 01 20 05 28 00 30 00 40 03 " + EMPTY_SNAPSHOT_FIELD + " 50 00 58 00"),
    ("3.1 link heartbeat [obs]",
     message(type=raftpb.MsgHeartbeat),
     "08 08 10 00 18 00 20 00 28 00 30 00 40 00 " + EMPTY_SNAPSHOT_FIELD + " 50 00 58 00"),
    ("14.1 real heartbeat, 9-byte IDs [obs]",
     message(type=raftpb.MsgHeartbeat, to=P2, from_=E1, term=2, commit=5),
     "08 08 10 e5 a0 aa f9 db 9d fb 9b 27 18 a0 bd dd a3 b2 bb ac 9b 40 20 02 28 00 30 00"
     " 40 05 " + EMPTY_SNAPSHOT_FIELD + " 50 00 58 00"),
    ("MsgHeartbeatResp with context",
     message(type=raftpb.MsgHeartbeatResp, to=1, from_=2, term=5,
             context=bytes(range(8))),
     "08 09 10 01 18 02 20 05 28 00 30 00 40 00 " + EMPTY_SNAPSHOT_FIELD
     + " 50 00 58 00 62 08 00 01 02 03 04 05 06 07"),
    ("MsgVote",
     message(type=raftpb.MsgVote, to=2, from_=1, term=2, logTerm=1, index=2),
     "08 05 10 02 18 01 20 02 28 01 30 02 40 00 " + EMPTY_SNAPSHOT_FIELD + " 50 00 58 00"),
    ("MsgVoteResp grant",
     message(type=raftpb.MsgVoteResp, to=1, from_=2, term=2),
     "08 06 10 01 18 02 20 02 28 00 30 00 40 00 " + EMPTY_SNAPSHOT_FIELD + " 50 00 58 00"),
    ("MsgVoteResp reject",
     message(type=raftpb.MsgVoteResp, to=1, from_=2, term=2, reject=True),
     "08 06 10 01 18 02 20 02 28 00 30 00 40 00 " + EMPTY_SNAPSHOT_FIELD + " 50 01 58 00"),
    ("MsgApp with one entry",
     message(type=raftpb.MsgApp, to=2, from_=1, term=2, logTerm=1, index=2, commit=2,
             entries=[Entry(Term=2, Index=3)]),
     "08 03 10 02 18 01 20 02 28 01 30 02 3a 06 08 00 10 02 18 03 40 02 "
     + EMPTY_SNAPSHOT_FIELD + " 50 00 58 00"),
    ("MsgAppResp",
     message(type=raftpb.MsgAppResp, to=1, from_=2, term=2, index=3),
     "08 04 10 01 18 02 20 02 28 00 30 03 40 00 " + EMPTY_SNAPSHOT_FIELD + " 50 00 58 00"),
    ("MsgAppResp reject",
     message(type=raftpb.MsgAppResp, to=1, from_=2, term=2, index=7, reject=True,
             rejectHint=2),
     "08 04 10 01 18 02 20 02 28 00 30 07 40 00 " + EMPTY_SNAPSHOT_FIELD + " 50 01 58 02"),
]

CONF_CHANGE_CONTEXT = b'{"id":2825987797056917605,"peerURLs":["http://127.0.0.1:23802"],"name":"p2"}'

# Smaller messages (spec 9, 11.3, 14.2, 3.4).
GOLDEN_OTHERS = [
    ("empty ConfState", ConfState(), "28 00"),
    ("empty SnapshotMetadata", SnapshotMetadata(), "0a 02 28 00 10 00 18 00"),
    ("empty Snapshot", Snapshot(), "12 08 0a 02 28 00 10 00 18 00"),
    ("entry with data", Entry(Term=2, Index=4, Data=b"hello"),
     "08 00 10 02 18 04 22 05 68 65 6c 6c 6f"),
    ("leader's empty entry: no Data field [obs]", Entry(Term=2, Index=3), "08 00 10 02 18 03"),
    ("bootstrap ConfChange: ID written first [obs]",
     ConfChange(type=raftpb.ConfChangeAddNode, node_id=P2, context=CONF_CHANGE_CONTEXT),
     "08 00 10 00 18 e5 a0 aa f9 db 9d fb 9b 27 22 4c " + CONF_CHANGE_CONTEXT.hex()),
    ("HardState at zero", HardState(), "08 00 10 00 18 00"),
    ("ConfState voters unpacked",
     ConfState(voters=[1, 300]), "08 01 08 ac 02 28 00"),
    ("ConfChangeV2 with a change",
     ConfChangeV2(changes=[ConfChangeSingle(node_id=3)]), "08 00 12 04 08 00 10 03"),
]


def isRepeated(field):
    """protobuf 7 dropped C{label} for C{is_repeated}; older ones lack the latter."""
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == field.LABEL_REPEATED


class SchemaTests(SynchronousTestCase):
    """
    The compiled schema has etcd's field numbers and types: a wrong number
    or type would be invisible to round-trip tests yet break interop.
    """

    def fields(self, cls):
        return {f.name: (f.number, f.type, isRepeated(f)) for f in cls.DESCRIPTOR.fields}

    def test_messageFields(self):
        """Message: fields 1-12 as in spec 9, entries repeated."""
        F = raftpb.Message.DESCRIPTOR.fields[0]
        expected = {
            "type": (1, F.TYPE_ENUM), "to": (2, F.TYPE_UINT64), "from": (3, F.TYPE_UINT64),
            "term": (4, F.TYPE_UINT64), "logTerm": (5, F.TYPE_UINT64),
            "index": (6, F.TYPE_UINT64), "entries": (7, F.TYPE_MESSAGE),
            "commit": (8, F.TYPE_UINT64), "snapshot": (9, F.TYPE_MESSAGE),
            "reject": (10, F.TYPE_BOOL), "rejectHint": (11, F.TYPE_UINT64),
            "context": (12, F.TYPE_BYTES),
        }
        actual = self.fields(Message)
        self.assertEqual({k: v[:2] for k, v in actual.items()}, expected)
        self.assertEqual([k for k, v in actual.items() if v[2]], ["entries"])

    def test_otherFields(self):
        """The smaller messages' numbers (the wire order of spec 9)."""
        self.assertEqual({k: v[0] for k, v in self.fields(Entry).items()},
                         {"Type": 1, "Term": 2, "Index": 3, "Data": 4})
        self.assertEqual({k: v[0] for k, v in self.fields(ConfChange).items()},
                         {"id": 1, "type": 2, "node_id": 3, "context": 4})
        self.assertEqual({k: v[0] for k, v in self.fields(ConfState).items()},
                         {"voters": 1, "learners": 2, "voters_outgoing": 3,
                          "learners_next": 4, "auto_leave": 5})
        self.assertEqual({k: v[0] for k, v in self.fields(SnapshotMetadata).items()},
                         {"conf_state": 1, "index": 2, "term": 3})
        self.assertEqual({k: v[0] for k, v in self.fields(Snapshot).items()},
                         {"data": 1, "metadata": 2})
        self.assertEqual({k: v[0] for k, v in self.fields(HardState).items()},
                         {"term": 1, "vote": 2, "commit": 3})
        self.assertEqual({k: v[0] for k, v in self.fields(ConfChangeV2).items()},
                         {"transition": 1, "changes": 2, "context": 3})

    def test_repeatedScalarsUnpacked(self):
        """gogoproto writes repeated uint64 unpacked; proto2 must not pack."""
        for field in ConfState.DESCRIPTOR.fields[:4]:
            self.assertFalse(field.GetOptions().packed, field.name)

    def test_enums(self):
        """Enum values are etcd's (spec 9)."""
        names = ["MsgHup", "MsgBeat", "MsgProp", "MsgApp", "MsgAppResp", "MsgVote",
                 "MsgVoteResp", "MsgSnap", "MsgHeartbeat", "MsgHeartbeatResp",
                 "MsgUnreachable", "MsgSnapStatus", "MsgCheckQuorum", "MsgTransferLeader",
                 "MsgTimeoutNow", "MsgReadIndex", "MsgReadIndexResp", "MsgPreVote",
                 "MsgPreVoteResp"]
        self.assertEqual([(n, getattr(raftpb, n)) for n in names],
                         list(zip(names, range(19), strict=True)))
        self.assertEqual(raftpb.MessageType.items(), list(zip(names, range(19), strict=True)))
        self.assertEqual(
            (raftpb.EntryNormal, raftpb.EntryConfChange, raftpb.EntryConfChangeV2), (0, 1, 2))
        self.assertEqual(
            (raftpb.ConfChangeAddNode, raftpb.ConfChangeRemoveNode,
             raftpb.ConfChangeUpdateNode, raftpb.ConfChangeAddLearnerNode), (0, 1, 2, 3))
        self.assertEqual(
            (raftpb.ConfChangeTransitionAuto, raftpb.ConfChangeTransitionJointImplicit,
             raftpb.ConfChangeTransitionJointExplicit), (0, 1, 2))

    def test_protoFileName(self):
        """
        The descriptor is registered under a path of its own, so it cannot
        clash with another library's raft.proto in the default pool.
        """
        self.assertEqual(raft_pb2.DESCRIPTOR.name, "raftmux/raftpb/raft.proto")


class GoldenVectorTests(SynchronousTestCase):
    """L{encode} reproduces the spec's vectors, and etcd's bytes round-trip."""

    def test_encodeMessages(self):
        for name, m, expected in GOLDEN_MESSAGES:
            self.assertEqual(encode(m).hex(" "), h(expected).hex(" "), name)

    def test_encodeOthers(self):
        for name, m, expected in GOLDEN_OTHERS:
            self.assertEqual(encode(m).hex(" "), h(expected).hex(" "), name)

    def test_heartbeatSize(self):
        """The spec's hand count: the 14.1 heartbeat is 30 bytes."""
        self.assertEqual(len(encode(GOLDEN_MESSAGES[0][1])), 30)

    def test_decodeReencode(self):
        """Decoding etcd's bytes and encoding again gives the same bytes."""
        for name, _, expected in GOLDEN_MESSAGES:
            data = h(expected)
            self.assertEqual(encode(Message.FromString(data)), data, name)
        for name, m, expected in GOLDEN_OTHERS:
            data = h(expected)
            self.assertEqual(encode(type(m).FromString(data)), data, name)

    def test_decodedFields(self):
        """The parsed real heartbeat has the values etcd put in."""
        m = Message.FromString(h(GOLDEN_MESSAGES[2][2]))
        self.assertEqual((m.type, m.to, getattr(m, "from"), m.term, m.commit),
                         (raftpb.MsgHeartbeat, P2, E1, 2, 5))
        self.assertFalse(m.HasField("context"))

    def test_walEntry(self):
        """
        The bootstrap WAL entry of spec 11.3: an EntryConfChange whose Data
        is the ConfChange above.
        """
        cc = GOLDEN_OTHERS[5][1]
        entry = Entry(Type=raftpb.EntryConfChange, Term=1, Index=1, Data=encode(cc))
        self.assertEqual(encode(entry)[:8], h("08 01 10 01 18 01 22 5c"))
        self.assertEqual(len(encode(cc)), 0x5C)
        self.assertEqual(ConfChange.FromString(Entry.FromString(encode(entry)).Data).context,
                         CONF_CHANGE_CONTEXT)

    def test_observedSnapshotMetadata(self):
        """The MsgSnap metadata of spec 3.3: voters ascending, one tag each."""
        md = SnapshotMetadata(conf_state=ConfState(voters=[P2, E1]), index=7206, term=2)
        data = encode(md)
        self.assertEqual(data.hex(" "), (
            "0a 16 08 e5 a0 aa f9 db 9d fb 9b 27 08 a0 bd dd a3 b2 bb ac 9b 40 28 00"
            " 10 a6 38 18 02"))
        self.assertEqual(encode(SnapshotMetadata.FromString(data)), data)


class EncodeTests(SynchronousTestCase):
    """The behaviour of L{encode} and L{normalize} beyond the vectors."""

    def test_argumentUnchanged(self):
        """L{encode} leaves presence alone; only L{normalize} sets it."""
        m = message(type=raftpb.MsgApp, to=2, entries=[Entry(Term=1, Index=1)])
        before = m.SerializeToString()
        encode(m)
        self.assertEqual(m.SerializeToString(), before)
        self.assertFalse(m.HasField("snapshot"))
        self.assertFalse(m.entries[0].HasField("Type"))

    def test_normalize(self):
        """
        After L{normalize}, plain C{SerializeToString} is etcd's encoding and
        decoded etcd bytes compare equal with C{==}.
        """
        m = message(type=raftpb.MsgApp, to=2, from_=1, term=2, logTerm=1, index=2, commit=2,
                    entries=[Entry(Term=2, Index=3)])
        self.assertIs(normalize(m), m)
        self.assertEqual(m.SerializeToString(), encode(m))
        self.assertEqual(m, Message.FromString(encode(m)))
        self.assertTrue(m.entries[0].HasField("Type"))
        self.assertTrue(m.snapshot.metadata.conf_state.HasField("auto_leave"))

    def test_normalizeConfChangeV2(self):
        """Repeated ConfChangeSingle elements are normalized too."""
        cc = ConfChangeV2(changes=[ConfChangeSingle(node_id=3), ConfChangeSingle()])
        self.assertEqual(normalize(cc).SerializeToString(),
                         h("08 00 12 04 08 00 10 03 12 04 08 00 10 00"))
        self.assertEqual(encode(ConfChangeV2(changes=[ConfChangeSingle()])),
                         h("08 00 12 04 08 00 10 00"))

    def test_zeroEntry(self):
        """An entry left all-zero still gets its three fields."""
        self.assertIn(h("3a 06 08 00 10 00 18 00"), encode(Message(entries=[Entry()])))

    def test_emptyContextIsPresent(self):
        """Present-but-empty bytes (C{62 00}) differ from absent, both ways."""
        present = message(type=raftpb.MsgHeartbeatResp, context=b"")
        absent = message(type=raftpb.MsgHeartbeatResp)
        self.assertEqual(encode(present), encode(absent) + h("62 00"))
        self.assertTrue(Message.FromString(encode(present)).HasField("context"))
        self.assertFalse(Message.FromString(encode(absent)).HasField("context"))
        entry = Entry(Data=b"")
        self.assertEqual(encode(entry), h("08 00 10 00 18 00 22 00"))

    def test_snapshotDataPresent(self):
        """Snapshot.data, when set, comes before the metadata."""
        m = message(type=raftpb.MsgSnap, snapshot=Snapshot(data=b"ab"))
        self.assertIn(h("4a 0e 0a 02 61 62 12 08 0a 02 28 00 10 00 18 00"), encode(m))

    def test_unknownFieldsLast(self):
        """
        Unknown fields survive a round trip and are written after the known
        ones, as gogoproto's XXX_unrecognized: field 13 here.
        """
        data = h(GOLDEN_MESSAGES[0][2])
        extra = h("68 07")
        self.assertEqual(encode(Message.FromString(extra + data)), data + extra)

    def test_unknownEnumValue(self):
        """
        A MessageType this schema does not know reads as 0 but is kept, and
        written last so that Go (last value wins) still sees it.
        """
        data = h("08 13 10 02")
        m = Message.FromString(data)
        self.assertEqual(m.type, raftpb.MsgHup)
        self.assertTrue(encode(m).endswith(h("08 13")))

    def test_largeIDs(self):
        """A member ID with the top bit set takes 10 varint bytes."""
        m = message(type=raftpb.MsgHeartbeat, to=2**64 - 1)
        self.assertEqual(encode(m)[2:14], h("10 ff ff ff ff ff ff ff ff ff 01 18"))

    def test_badBytes(self):
        """Truncated protobuf raises L{DecodeError}."""
        self.assertRaises(DecodeError, Message.FromString, h("4a 0a 12"))


# -- an independent oracle: spec 9's rules, written out by hand -------------------

def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number, wireType):
    return varint(number << 3 | wireType)


def lengthDelimited(number, data):
    return key(number, 2) + varint(len(data)) + data


def oracleEntry(t, term, index, data):
    out = key(1, 0) + varint(t) + key(2, 0) + varint(term) + key(3, 0) + varint(index)
    if data is not None:
        out += lengthDelimited(4, data)
    return out


def oracleMessage(fields):
    """gogoproto's Marshal of Message, from a dict of plain values."""
    out = b""
    for number, name in enumerate(["type", "to", "from", "term", "logTerm", "index"], 1):
        out += key(number, 0) + varint(fields[name])
    for entry in fields["entries"]:
        out += lengthDelimited(7, oracleEntry(*entry))
    out += key(8, 0) + varint(fields["commit"])
    snap = fields["snapshot"]
    confState = b"".join(key(1, 0) + varint(v) for v in snap["voters"]) + key(5, 0) + b"\x00"
    metadata = (lengthDelimited(1, confState) + key(2, 0) + varint(snap["index"])
                + key(3, 0) + varint(snap["term"]))
    snapshot = b""
    if snap["data"] is not None:
        snapshot += lengthDelimited(1, snap["data"])
    snapshot += lengthDelimited(2, metadata)
    out += lengthDelimited(9, snapshot)
    out += key(10, 0) + varint(int(fields["reject"])) + key(11, 0) + varint(fields["rejectHint"])
    if fields["context"] is not None:
        out += lengthDelimited(12, fields["context"])
    return out


u64 = st.integers(min_value=0, max_value=2**64 - 1)
smallU64 = st.one_of(st.integers(min_value=0, max_value=300), u64)
maybeBytes = st.one_of(st.none(), st.binary(max_size=40))
entries = st.tuples(st.integers(0, 2), smallU64, smallU64, maybeBytes)
snapshots = st.fixed_dictionaries({
    "voters": st.lists(u64, max_size=3), "index": smallU64, "term": smallU64,
    "data": maybeBytes})
messageFields = st.fixed_dictionaries({
    "type": st.integers(0, 18), "to": u64, "from": u64, "term": smallU64,
    "logTerm": smallU64, "index": smallU64, "entries": st.lists(entries, max_size=3),
    "commit": smallU64, "snapshot": snapshots, "reject": st.booleans(),
    "rejectHint": smallU64, "context": maybeBytes})
# Which of the always-written fields the caller bothers to set.
setFlags = st.lists(st.booleans(), min_size=13, max_size=13)


def buildMessage(fields, flags):
    """A Message holding ``fields``, with zero-valued fields set or not per ``flags``."""
    m = Message()
    names = ["type", "to", "from", "term", "logTerm", "index", "commit", "reject", "rejectHint"]
    for name, flag in zip(names, flags[:9], strict=True):
        if fields[name] or flag:
            setattr(m, name, fields[name])
    for t, term, index, data in fields["entries"]:
        e = m.entries.add()
        if t or flags[9]:
            e.Type = t
        if term or flags[10]:
            e.Term = term
        if index or flags[12]:
            e.Index = index
        if data is not None:
            e.Data = data
    snap = fields["snapshot"]
    md = m.snapshot.metadata
    md.conf_state.voters.extend(snap["voters"])
    if snap["index"] or flags[11]:
        md.index = snap["index"]
    md.term = snap["term"]
    if snap["data"] is not None:
        m.snapshot.data = snap["data"]
    if fields["context"] is not None:
        m.context = fields["context"]
    return m


class PropertyTests(SynchronousTestCase):
    """L{encode} against a hand-written encoder of spec 9's rules."""

    @given(messageFields, setFlags)
    def test_matchesOracle(self, fields, flags):
        """Whatever the caller set, L{encode} writes what gogoproto writes."""
        m = buildMessage(fields, flags)
        expected = oracleMessage(fields)
        self.assertEqual(encode(m), expected)
        self.assertEqual(encode(Message.FromString(expected)), expected)

    @given(messageFields)
    def test_normalizeAgrees(self, fields):
        m = buildMessage(fields, [False] * 13)
        self.assertEqual(normalize(m).SerializeToString(), oracleMessage(fields))

    @given(st.binary(max_size=200))
    def test_randomBytes(self, data):
        """
        Random input either fails with L{DecodeError} or parses to a Message
        whose encoding is a fixed point.
        """
        try:
            m = Message.FromString(data)
        except DecodeError:
            return
        once = encode(m)
        self.assertEqual(encode(Message.FromString(once)), once)
