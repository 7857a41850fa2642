# -*- test-case-name: raftmux.test.test_memberlist_codec -*-
"""
memberlist's wire messages (hashicorp/memberlist 0.2.2, ``net.go``) as
Python values, and their encoding.

A packet message is one type byte and one msgpack value.  The msgpack is
what go-msgpack's zero ``MsgpackHandle`` writes, and that is the *old*
msgpack spec: a struct is a map keyed by its Go field names in the
order of name (go-msgpack sorts them; ``omitempty`` fields left out when
zero), strings and ``[]byte``
alike are "raw" (fixraw, raw16, raw32: never str8 or bin), a nil slice is
nil, integers take the shortest form whatever their Go type.  Python's
``msgpack`` writes exactly that with ``use_bin_type=False``.  Addresses are
``net.IP`` bytes: 4 for IPv4, 16 for IPv6.

Decoding is as lenient as Go's (unknown keys skipped, nil is the zero value,
a struct may also come as an array in field order) and as strict where Go
is (an integer out of its field's range, a wrong type): every failure is a
``DecodeError``, never another exception.

Framing around messages: ``compound`` (type 7, a count byte, big-endian
uint16 lengths, the parts), ``crc`` (type 12, a big-endian CRC-32 of the
rest; Go adds it on packets to peers whose protocol max is >= 5) and
``compress`` (type 9, a msgpack ``{Algo, Buf}`` holding LZW).  Encryption
(type 10) is not implemented: such packets are refused with a log line.
"""

import ipaddress
import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import msgpack

from raftmux.memberlist import lzw


class MessageType(IntEnum):
    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    SUSPECT = 3
    ALIVE = 4
    DEAD = 5
    PUSH_PULL = 6
    COMPOUND = 7
    USER = 8
    COMPRESS = 9
    ENCRYPT = 10
    NACK = 11
    HAS_CRC = 12
    ERR = 13


class NodeStateType(IntEnum):
    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


class DecodeError(ValueError):
    """Bytes that are not a memberlist message we can read."""


LZW_ALGO = 0
MAX_UINT8 = 0xFF
MAX_UINT16 = 0xFFFF
MAX_UINT32 = 0xFFFFFFFF
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
#: Go's maxPushStateBytes: the most a stream's decompressed state may hold
MAX_PUSH_STATE_BYTES = 20 * 1024 * 1024


# -- addresses ------------------------------------------------------------------


def ipToBytes(ip):
    """``"127.0.0.1"`` -> 4 bytes, an IPv6 text -> 16 bytes (Go's ``To4`` rule)."""
    parsed = ipaddress.ip_address(ip)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return parsed.packed


def ipFromBytes(data):
    """Inverse of ``ipToBytes``; ``""`` for bytes that are no IP (Go prints ``?...``)."""
    if len(data) == 4:
        return str(ipaddress.IPv4Address(bytes(data)))
    if len(data) == 16:
        parsed = ipaddress.IPv6Address(bytes(data))
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(parsed)
    return ""


def joinHostPort(host, port):
    if ":" in host:
        return "[%s]:%d" % (host, port)
    return "%s:%d" % (host, port)


def splitHostPort(address):
    """``"1.2.3.4:5"`` or ``"[::1]:5"`` -> ``(host, port)``; ValueError otherwise."""
    if address.startswith("["):
        end = address.find("]:")
        if end < 0:
            raise ValueError("bad address %r" % (address,))
        host, port = address[1:end], address[end + 2:]
    else:
        host, sep, port = address.rpartition(":")
        if not sep or ":" in host:
            raise ValueError("bad address %r" % (address,))
    port = int(port)
    if not 0 <= port <= MAX_UINT16:
        raise ValueError("bad port in %r" % (address,))
    return host, port


# -- field kinds -----------------------------------------------------------------
# Each converts a decoded msgpack value to the field's Python value (or raises
# DecodeError) as go-msgpack would when decoding into the Go field type.


def _uint(limit):
    def conv(value):
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise DecodeError("expected an unsigned integer, got %r" % (type(value).__name__,))
        if value < 0 or value > limit:
            raise DecodeError("integer %d out of range" % (value,))
        return value
    return conv


def _int(value):
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError("expected an integer, got %r" % (type(value).__name__,))
    if not INT64_MIN <= value <= INT64_MAX:
        raise DecodeError("integer out of range")
    return value


def _bytes(value):
    if value is None:
        return b""
    if not isinstance(value, bytes):
        raise DecodeError("expected raw bytes, got %r" % (type(value).__name__,))
    return value


def _string(value):
    if value is None:
        return ""
    if not isinstance(value, bytes):
        raise DecodeError("expected a string, got %r" % (type(value).__name__,))
    return value.decode("utf-8", "surrogateescape")


def _bool(value):
    if value is None:
        return False
    if not isinstance(value, bool):
        raise DecodeError("expected a bool, got %r" % (type(value).__name__,))
    return value


U8, U16, U32 = _uint(MAX_UINT8), _uint(MAX_UINT16), _uint(MAX_UINT32)
INT, BYTES, STRING, BOOL = _int, _bytes, _string, _bool


# -- messages ----------------------------------------------------------------------
#
# Each message class lists FIELDS: (Go field name, python attribute, kind,
# omitempty) in the Go struct's declaration order, which is what an array-
# encoded struct follows; maps are written with their keys sorted.


class _Message:
    FIELDS: tuple[tuple[str, str, Any, bool], ...] = ()
    TYPE: Any = None

    def toWire(self):
        """
        The Go struct as a dict, omitempty fields dropped, keys sorted by
        name: go-msgpack writes a struct's fields in the order of their
        encoded names, not of their declaration.
        """
        out = {}
        for goName, attr, kind, omitEmpty in sorted(self.FIELDS):
            value = getattr(self, attr)
            if omitEmpty and not value:
                continue
            if kind is STRING:
                value = value.encode("utf-8", "surrogateescape")
            elif kind is BYTES:
                value = bytes(value) if value else None
            elif kind is BOOL:
                value = bool(value)
            out[goName] = value
        return out

    @classmethod
    def fromWire(cls, obj):
        kwargs = {}
        byName = {goName: (attr, kind) for goName, attr, kind, _ in cls.FIELDS}
        if isinstance(obj, dict):
            for key, value in obj.items():
                if not isinstance(key, bytes):
                    raise DecodeError("struct key is not a string")
                entry = byName.get(key.decode("latin-1"))
                if entry is not None:
                    kwargs[entry[0]] = entry[1](value)
        elif isinstance(obj, (list, tuple)):
            for spec, value in zip(cls.FIELDS, obj, strict=False):
                kwargs[spec[1]] = spec[2](value)
        elif obj is None:
            pass
        else:
            raise DecodeError("%s: expected a map, got %s" % (cls.__name__, type(obj).__name__))
        return cls(**kwargs)

    def encode(self):
        """Type byte and msgpack body: one packet message."""
        return bytes((self.TYPE,)) + packb(self.toWire())


@dataclass
class Ping(_Message):
    TYPE = MessageType.PING
    FIELDS = (("SeqNo", "seqNo", U32, False), ("Node", "node", STRING, False),
              ("SourceAddr", "sourceAddr", BYTES, True), ("SourcePort", "sourcePort", U16, True),
              ("SourceNode", "sourceNode", STRING, True))
    seqNo: int = 0
    node: str = ""
    sourceAddr: bytes = b""
    sourcePort: int = 0
    sourceNode: str = ""


@dataclass
class IndirectPing(_Message):
    TYPE = MessageType.INDIRECT_PING
    FIELDS = (("SeqNo", "seqNo", U32, False), ("Target", "target", BYTES, False),
              ("Port", "port", U16, False), ("Node", "node", STRING, False),
              ("Nack", "nack", BOOL, False),
              ("SourceAddr", "sourceAddr", BYTES, True), ("SourcePort", "sourcePort", U16, True),
              ("SourceNode", "sourceNode", STRING, True))
    seqNo: int = 0
    target: bytes = b""
    port: int = 0
    node: str = ""
    nack: bool = False
    sourceAddr: bytes = b""
    sourcePort: int = 0
    sourceNode: str = ""


@dataclass
class Ack(_Message):
    TYPE = MessageType.ACK
    FIELDS = (("SeqNo", "seqNo", U32, False), ("Payload", "payload", BYTES, False))
    seqNo: int = 0
    payload: bytes = b""


@dataclass
class Nack(_Message):
    TYPE = MessageType.NACK
    FIELDS = (("SeqNo", "seqNo", U32, False),)
    seqNo: int = 0


@dataclass
class ErrResp(_Message):
    TYPE = MessageType.ERR
    FIELDS = (("Error", "error", STRING, False),)
    error: str = ""


@dataclass
class Suspect(_Message):
    TYPE = MessageType.SUSPECT
    FIELDS = (("Incarnation", "incarnation", U32, False), ("Node", "node", STRING, False),
              ("From", "fromNode", STRING, False))
    incarnation: int = 0
    node: str = ""
    fromNode: str = ""


@dataclass
class Alive(_Message):
    """``vsn`` is (pmin, pmax, pcur, dmin, dmax, dcur), sent as raw bytes (Go's []uint8)."""

    TYPE = MessageType.ALIVE
    FIELDS = (("Incarnation", "incarnation", U32, False), ("Node", "node", STRING, False),
              ("Addr", "addr", BYTES, False), ("Port", "port", U16, False),
              ("Meta", "meta", BYTES, False), ("Vsn", "vsn", BYTES, False))
    incarnation: int = 0
    node: str = ""
    addr: bytes = b""
    port: int = 0
    meta: bytes = b""
    vsn: bytes = b""


@dataclass
class Dead(_Message):
    TYPE = MessageType.DEAD
    FIELDS = (("Incarnation", "incarnation", U32, False), ("Node", "node", STRING, False),
              ("From", "fromNode", STRING, False))
    incarnation: int = 0
    node: str = ""
    fromNode: str = ""


@dataclass
class PushPullHeader(_Message):
    TYPE = MessageType.PUSH_PULL
    FIELDS = (("Nodes", "nodes", INT, False), ("UserStateLen", "userStateLen", INT, False),
              ("Join", "join", BOOL, False))
    nodes: int = 0
    userStateLen: int = 0
    join: bool = False


@dataclass
class UserMsgHeader(_Message):
    TYPE = MessageType.USER
    FIELDS = (("UserMsgLen", "userMsgLen", INT, False),)
    userMsgLen: int = 0


@dataclass
class PushNodeState(_Message):
    FIELDS = (("Name", "name", STRING, False), ("Addr", "addr", BYTES, False),
              ("Port", "port", U16, False), ("Meta", "meta", BYTES, False),
              ("Incarnation", "incarnation", U32, False), ("State", "state", INT, False),
              ("Vsn", "vsn", BYTES, False))
    name: str = ""
    addr: bytes = b""
    port: int = 0
    meta: bytes = b""
    incarnation: int = 0
    state: int = 0
    vsn: bytes = b""


@dataclass
class Compress(_Message):
    TYPE = MessageType.COMPRESS
    FIELDS = (("Algo", "algo", U8, False), ("Buf", "buf", BYTES, False))
    algo: int = LZW_ALGO
    buf: bytes = b""


@dataclass
class UserMessage:
    """A ``userMsg`` packet: the type byte and the user's bytes, no msgpack."""

    TYPE = MessageType.USER
    data: bytes = b""

    def encode(self):
        return bytes((MessageType.USER,)) + bytes(self.data)


@dataclass
class PushPull:
    """A whole push/pull message (streams only): header, node states, user state."""

    TYPE = MessageType.PUSH_PULL
    join: bool = False
    nodes: list = field(default_factory=list)
    userState: bytes = b""

    def encode(self):
        header = PushPullHeader(nodes=len(self.nodes), userStateLen=len(self.userState),
                                join=self.join)
        parts = [header.encode()]
        parts.extend(packb(n.toWire()) for n in self.nodes)
        parts.append(bytes(self.userState))
        return b"".join(parts)


@dataclass
class UserStream:
    """A ``userMsg`` sent reliably (streams only): header then the bytes."""

    TYPE = MessageType.USER
    data: bytes = b""

    def encode(self):
        return UserMsgHeader(userMsgLen=len(self.data)).encode() + bytes(self.data)


PACKET_CLASSES = {
    MessageType.PING: Ping,
    MessageType.INDIRECT_PING: IndirectPing,
    MessageType.ACK: Ack,
    MessageType.NACK: Nack,
    MessageType.SUSPECT: Suspect,
    MessageType.ALIVE: Alive,
    MessageType.DEAD: Dead,
    MessageType.ERR: ErrResp,
}


# -- msgpack -------------------------------------------------------------------


def packb(obj):
    return msgpack.packb(obj, use_bin_type=False)


def newUnpacker(maxBuffer, maxLen=MAX_PUSH_STATE_BYTES):
    """An Unpacker reading go-msgpack's output: raw stays bytes, map keys any type."""
    return msgpack.Unpacker(raw=True, strict_map_key=False, use_list=True,
                            max_buffer_size=maxBuffer, max_bin_len=maxLen,
                            max_str_len=maxLen, max_array_len=maxLen,
                            max_map_len=maxLen, max_ext_len=maxLen)


def unpackOne(data, offset=0):
    """
    One msgpack value from ``data[offset:]``: ``(value, newOffset)``, or
    ``None`` when the value is incomplete.  Raises ``DecodeError``.
    """
    size = len(data) - offset
    if size <= 0:
        return None
    unpacker = newUnpacker(max(size, 1))
    unpacker.feed(memoryview(data)[offset:])
    try:
        value = unpacker.unpack()
    except msgpack.OutOfData:
        return None
    except (ValueError, msgpack.UnpackException, TypeError, RecursionError) as e:
        raise DecodeError("bad msgpack: %s" % (e,))
    return value, offset + unpacker.tell()


def decodeBody(cls, data):
    """The message ``cls`` from a packet body (the bytes after the type byte)."""
    result = unpackOne(data)
    if result is None:
        raise DecodeError("%s: truncated" % (cls.__name__,))
    return cls.fromWire(result[0])


# -- packet framing ------------------------------------------------------------------


def makeCompound(messages):
    """Go's makeCompoundMessage: at most 255 parts, each at most 65535 bytes."""
    if len(messages) > MAX_UINT8:
        raise ValueError("a compound message holds at most 255 parts")
    header = bytearray((MessageType.COMPOUND, len(messages)))
    for m in messages:
        header += struct.pack(">H", len(m))
    return bytes(header) + b"".join(messages)


def splitCompound(body):
    """
    Go's decodeCompoundMessage on the bytes after the type byte:
    ``(truncated, parts)``; parts past the end of the buffer are counted in
    ``truncated``, as Go does, not an error.
    """
    if len(body) < 1:
        raise DecodeError("missing compound length byte")
    count = body[0]
    if len(body) < 1 + 2 * count:
        raise DecodeError("truncated len slice")
    lengths = struct.unpack_from(">%dH" % count, body, 1)
    pos = 1 + 2 * count
    parts: list[Any] = []
    for index, length in enumerate(lengths):
        if len(body) - pos < length:
            return count - index, parts
        parts.append(bytes(body[pos:pos + length]))
        pos += length
    return 0, parts


def addCrc(message):
    return struct.pack(">BI", MessageType.HAS_CRC, zlib.crc32(message)) + message


def stripCrc(packet):
    """A packet without its CRC wrapper (checked), or unchanged when it has none."""
    if len(packet) >= 5 and packet[0] == MessageType.HAS_CRC:
        (expected,) = struct.unpack_from(">I", packet, 1)
        body = packet[5:]
        if zlib.crc32(body) != expected:
            raise DecodeError("invalid checksum")
        return body
    return packet


def compressMessage(message):
    """``message`` wrapped as a compressMsg, as Go's compressPayload builds it."""
    return Compress(algo=LZW_ALGO, buf=lzw.compress(message)).encode()


def decompressBody(body, maxOutput=MAX_PUSH_STATE_BYTES):
    """The bytes inside a compressMsg body (after the type byte)."""
    return decompressStruct(decodeBody(Compress, body), maxOutput)


def decompressStruct(c, maxOutput=MAX_PUSH_STATE_BYTES):
    if c.algo != LZW_ALGO:
        raise DecodeError("Cannot decompress unknown algorithm %d" % (c.algo,))
    try:
        return lzw.decompress(c.buf, maxOutput)
    except lzw.LZWError as e:
        raise DecodeError(str(e))


def decodePacketMessage(message, maxDepth=4):
    """
    Every message inside one packet (CRC already stripped), unwrapping
    compound and compressed messages, as a list of ``(type, value)`` where
    value is a message object or, for unknown types, the raw body.  Raises
    ``DecodeError`` for the whole packet only when its outer framing is bad;
    a bad inner message becomes ``(type, DecodeError)`` so its siblings live.
    """
    out: list[Any] = []
    _decodeInto(message, out, maxDepth)
    return out


def _decodeInto(message, out, depth):
    if not message:
        out.append((None, DecodeError("empty message")))
        return
    msgType, body = message[0], message[1:]
    try:
        if msgType == MessageType.COMPOUND:
            if depth <= 0:
                raise DecodeError("messages nested too deeply")
            truncated, parts = splitCompound(body)
            for part in parts:
                _decodeInto(part, out, depth - 1)
            if truncated:
                out.append((MessageType.COMPOUND,
                            DecodeError("compound had %d truncated messages" % truncated)))
            return
        if msgType == MessageType.COMPRESS:
            if depth <= 0:
                raise DecodeError("messages nested too deeply")
            _decodeInto(decompressBody(body, maxOutput=1 << 20), out, depth - 1)
            return
        if msgType == MessageType.USER:
            out.append((msgType, UserMessage(bytes(body))))
            return
        cls = PACKET_CLASSES.get(msgType)
        if cls is None:
            raise DecodeError("msg type (%d) not supported" % (msgType,))
        out.append((msgType, decodeBody(cls, body)))
    except DecodeError as e:
        out.append((msgType, e))
