# -*- test-case-name: raftmux.test.test_ckit_messages -*-
"""
ckit's gossip messages, sans-IO: what rides in memberlist user messages
(broadcasts) and in the push/pull user state.

A message is the magic ``0x1201`` (big-endian uint16), a type byte (1 =
state), then one msgpack value as go-msgpack's zero ``MsgpackHandle``
writes it: a struct is a map keyed by the Go field names sorted by name,
strings are old-spec raw (fixraw/raw16/raw32), unsigned integers in their
shortest form.  ``packb`` from ``raftmux.memberlist.messages`` writes
exactly that.

* ``StateMessage`` is ckit's ``messages.State``: ``{NewState, NodeName,
  Time}`` (in that, sorted, order).  Fields a newer ckit adds are kept
  (ckit's ``UnknownFields``) and written back after the known ones.
* ``LocalState`` is the push/pull state: ``{CurrentTime, NodeStates}``,
  no magic header.

Parsing errors carry ckit's texts ("payload too small for message",
"invalid magic header ddff", "invalid message type 150").
"""

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from raftmux.ckit.lamport import MASK64
from raftmux.ckit.peer import PeerState, asState, stateName
from raftmux.memberlist.messages import DecodeError, packb, unpackOne

MAGIC = 0x1201
_header = struct.Struct(">HB")


class MessageType(IntEnum):
    INVALID = 0
    STATE = 1


class MessageError(DecodeError):
    """Bytes that are not a ckit message we can read (ckit logs and drops them)."""


def encodeMessage(msgType, body):
    """Magic, type byte, body.  ckit refuses to encode an unknown or invalid type."""
    msgType = MessageType(msgType)
    if msgType == MessageType.INVALID:
        raise ValueError("ty must be a known, valid type")
    return _header.pack(MAGIC, msgType) + body


def parseMessage(raw):
    """``(type, body)`` of an encoded message; ``MessageError`` with ckit's text."""
    raw = bytes(raw)
    if len(raw) < 3:
        raise MessageError("payload too small for message")
    magic, msgType = _header.unpack_from(raw)
    if magic != MAGIC:
        raise MessageError("invalid magic header %x" % (magic,))
    if msgType == MessageType.INVALID or msgType not in MessageType._value2member_map_:
        raise MessageError("invalid message type %d" % (msgType,))
    return MessageType(msgType), raw[3:]


# -- field conversions, as go-msgpack decodes into the Go field types ---------------


def _uint64(value):
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise MessageError("expected an unsigned integer, got %s" % (type(value).__name__,))
    if not 0 <= value <= MASK64:
        raise MessageError("integer %d out of range" % (value,))
    return value


def _string(value):
    if value is None:
        return ""
    if not isinstance(value, bytes):
        raise MessageError("expected a string, got %s" % (type(value).__name__,))
    return value.decode("utf-8", "surrogateescape")


def _fields(obj, names, what):
    """
    A decoded struct as ``({name: value}, unknown)``: a map (unknown keys
    kept, in order), an array in declaration order, or nil.
    """
    if obj is None:
        return {}, ()
    if isinstance(obj, (list, tuple)):
        return dict(zip(names, obj, strict=False)), ()
    if not isinstance(obj, dict):
        raise MessageError("%s: expected a map, got %s" % (what, type(obj).__name__))
    known, unknown = {}, []
    for key, value in obj.items():
        if not isinstance(key, bytes):
            raise MessageError("%s: a key is not a string" % (what,))
        name = key.decode("latin-1")
        if name in names:
            known[name] = value
        else:
            unknown.append((key, value))
    return known, tuple(unknown)


def _decodeValue(data, what):
    """The first msgpack value of ``data`` (Go's decoder ignores what follows)."""
    try:
        result = unpackOne(data)
    except DecodeError as e:
        raise MessageError("%s: %s" % (what, e))
    if result is None:
        raise MessageError("%s: truncated" % (what,))
    return result[0]


@dataclass(frozen=True)
class StateMessage:
    """One node's state at a Lamport time (ckit's ``messages.State``)."""

    nodeName: str
    newState: int
    time: int
    #: ``(key, value)`` pairs a newer ckit sent that we do not know, written back as they came
    unknown: tuple = field(default=(), compare=False)

    #: the Go struct's fields in declaration order (an array-encoded struct follows it)
    FIELDS = ("NodeName", "NewState", "Time")

    def __str__(self):
        return "%s @%d: %s" % (self.nodeName, self.time, stateName(self.newState))

    def toWire(self):
        out = {"NewState": int(self.newState),
               "NodeName": self.nodeName.encode("utf-8", "surrogateescape"),
               "Time": self.time}
        for key, value in self.unknown:
            out[key] = value
        return out

    @classmethod
    def fromWire(cls, obj):
        known, unknown = _fields(obj, cls.FIELDS, "State")
        return cls(_string(known.get("NodeName")), asState(_uint64(known.get("NewState"))),
                   _uint64(known.get("Time")), unknown)

    def encode(self):
        """The broadcast's bytes: magic, type 1, the msgpack map."""
        return encodeMessage(MessageType.STATE, packb(self.toWire()))


def decodeMessage(raw):
    """A whole broadcast -> ``StateMessage``; ``MessageError`` for anything else."""
    msgType, body = parseMessage(raw)
    if msgType == MessageType.STATE:
        return StateMessage.fromWire(_decodeValue(body, "State"))
    raise MessageError("invalid message type %d" % (msgType,))


@dataclass(frozen=True)
class LocalState:
    """The push/pull user state: our clock, and a state for every peer we know."""

    currentTime: int
    nodeStates: tuple

    FIELDS = ("CurrentTime", "NodeStates")

    def toWire(self):
        return {"CurrentTime": self.currentTime,
                "NodeStates": [s.toWire() for s in self.nodeStates]}

    def encode(self):
        return packb(self.toWire())

    @classmethod
    def decode(cls, data):
        known, _ = _fields(_decodeValue(bytes(data), "localState"), cls.FIELDS, "localState")
        states = known.get("NodeStates")
        if states is None:
            states = []
        if not isinstance(states, (list, tuple)):
            raise MessageError("localState: NodeStates is not an array")
        return cls(_uint64(known.get("CurrentTime")),
                   tuple(StateMessage.fromWire(s) for s in states))


def viewerAtZero(name):
    """What ckit reports for a peer that never announced a state."""
    return StateMessage(name, PeerState.VIEWER, 0)
