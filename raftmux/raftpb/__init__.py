# -*- test-case-name: raftmux.test.test_raftpb -*-
"""
etcd v3.4's raftpb messages, byte-exact with etcd's gogoproto encoding.

The classes are plain ``protobuf`` messages compiled from ``raft.proto``
(etcd's field names, numbers and types; the gogoproto options dropped).  What
the Python compiler cannot express is gogoproto's ``nullable=false``: etcd
writes those fields on every marshal, even at zero, while Python writes a
proto2 ``optional`` field only when it is set.  So:

* ``encode(message)`` gives etcd's bytes for any raftpb message, set or not.
  Use it (never ``SerializeToString``) for anything that goes on the wire or
  to disk.  It does not change its argument.
* ``normalize(message)`` marks every always-written field present, in place,
  so ``SerializeToString``, ``==`` and ``HasField`` agree with etcd's view.
* Parsing is plain protobuf: ``Message.FromString(data)`` (raises
  ``DecodeError``).  etcd's own bytes carry every always-written field, so
  ``encode(Message.FromString(etcdBytes)) == etcdBytes``.  Unknown fields
  are kept and written after the known ones, as gogoproto does.

Two things differ from Go's structs and are worth knowing:

* ``Message.from`` is a Python keyword: read it with
  ``getattr(m, "from")`` and set it with ``setattr(m, "from", x)`` or
  ``Message(**{"from": x})``.
* The enums are proto2 (closed) enums: a value this schema does not know
  (say a ``MessageType`` from a later etcd) is not stored in the field but
  kept as an unknown field, so the field reads as its zero value.
  ``encode`` still writes the unknown value after the known fields, where Go
  (last value wins) reads it back.

Comparing two messages: ``==`` also compares field presence, so compare
``encode(a) == encode(b)``; that is what Go's ``reflect.DeepEqual`` sees.
"""

from google.protobuf.message import DecodeError

from raftmux.raftpb.raft_pb2 import (
    ConfChange,
    ConfChangeAddLearnerNode,
    ConfChangeAddNode,
    ConfChangeRemoveNode,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeTransitionAuto,
    ConfChangeTransitionJointExplicit,
    ConfChangeTransitionJointImplicit,
    ConfChangeType,
    ConfChangeUpdateNode,
    ConfChangeV2,
    ConfState,
    Entry,
    EntryConfChange,
    EntryConfChangeV2,
    EntryNormal,
    EntryType,
    HardState,
    Message,
    MessageType,
    MsgApp,
    MsgAppResp,
    MsgBeat,
    MsgCheckQuorum,
    MsgHeartbeat,
    MsgHeartbeatResp,
    MsgHup,
    MsgPreVote,
    MsgPreVoteResp,
    MsgProp,
    MsgReadIndex,
    MsgReadIndexResp,
    MsgSnap,
    MsgSnapStatus,
    MsgTimeoutNow,
    MsgTransferLeader,
    MsgUnreachable,
    MsgVote,
    MsgVoteResp,
    Snapshot,
    SnapshotMetadata,
)

__all__ = [
    "ConfChange", "ConfChangeSingle", "ConfChangeV2", "ConfState", "Entry",
    "HardState", "Message", "Snapshot", "SnapshotMetadata",
    "ConfChangeTransition", "ConfChangeType", "EntryType", "MessageType",
    "ConfChangeAddLearnerNode", "ConfChangeAddNode", "ConfChangeRemoveNode",
    "ConfChangeUpdateNode", "ConfChangeTransitionAuto",
    "ConfChangeTransitionJointExplicit", "ConfChangeTransitionJointImplicit",
    "EntryConfChange", "EntryConfChangeV2", "EntryNormal",
    "MsgApp", "MsgAppResp", "MsgBeat", "MsgCheckQuorum", "MsgHeartbeat",
    "MsgHeartbeatResp", "MsgHup", "MsgPreVote", "MsgPreVoteResp", "MsgProp",
    "MsgReadIndex", "MsgReadIndexResp", "MsgSnap", "MsgSnapStatus",
    "MsgTimeoutNow", "MsgTransferLeader", "MsgUnreachable", "MsgVote",
    "MsgVoteResp",
    "DecodeError", "encode", "normalize", "ALWAYS_WRITTEN",
]


# For each message type: the fields gogoproto always writes (scalars and
# embedded messages marked nullable=false), and the repeated message fields
# whose elements need the same treatment.  Spec section 9.
ALWAYS_WRITTEN = {
    Entry: (("Type", "Term", "Index"), (), ()),
    SnapshotMetadata: (("index", "term"), ("conf_state",), ()),
    Snapshot: ((), ("metadata",), ()),
    Message: (("type", "to", "from", "term", "logTerm", "index", "commit",
               "reject", "rejectHint"), ("snapshot",), ("entries",)),
    HardState: (("term", "vote", "commit"), (), ()),
    ConfState: (("auto_leave",), (), ()),
    ConfChange: (("id", "type", "node_id"), (), ()),
    ConfChangeSingle: (("type", "node_id"), (), ()),
    ConfChangeV2: (("transition",), (), ("changes",)),
}


def normalize(message):
    """
    Mark every field etcd always writes as present, in place, keeping its
    value; recurse into embedded and repeated messages.  Returns
    ``message``.
    """
    scalars, embedded, repeated = ALWAYS_WRITTEN[type(message)]
    for name in scalars:
        setattr(message, name, getattr(message, name))
    for name in embedded:
        normalize(getattr(message, name))
    for name in repeated:
        for element in getattr(message, name):
            normalize(element)
    return message


def _template(cls):
    return normalize(cls()).SerializeToString()


# A normalized empty message of each type, as bytes.  Merging a message over
# its template fills in the always-written fields at their zero value, in C.
_TEMPLATES = {cls: _template(cls) for cls in ALWAYS_WRITTEN}


def encode(message):
    """
    The bytes etcd's gogoproto ``Marshal`` gives for ``message``: fields in
    field-number order, every non-nullable field written even at zero, unset
    ``bytes`` fields absent, unknown fields last.  ``message`` is unchanged.
    """
    cls = type(message)
    out = cls.FromString(_TEMPLATES[cls])
    out.MergeFrom(message)
    if cls is Message:
        for entry in out.entries:
            entry.Type = entry.Type
            entry.Term = entry.Term
            entry.Index = entry.Index
    elif cls is ConfChangeV2:
        for change in out.changes:
            change.type = change.type
            change.node_id = change.node_id
    return out.SerializeToString()
