# -*- test-case-name: raftmux.test.test_node_kv -*-
"""
The node's replicated state before etcd's MVCC key space took its place
(``raftmux.node.state``), sans-IO: a key/value map and the member table's
client attributes.  Kept so a data directory written then replays into
the key space: ``raftmux.node.entries`` reads these commands as the etcd
requests they amount to, ``raftmux.node.state`` these snapshots as puts.
Nothing writes this format any more.

Entries are these commands when their data starts with ``MAGIC``.

Command layout (all integers big-endian)::

    MAGIC  op(1)  keyLength(4)  key  value        op: P put, D delete
    MAGIC  C  keyLength(4)  key  prevLength(4)  prev  value
    MAGIC  A  memberID(8)  JSON {"name":..., "clientURLs":[...]}

``C`` is compare-and-set: the key takes ``value`` only if it holds
``prev`` when the entry is applied, so the comparison and the write are
one step of the replicated state machine (etcd v2's ``prevValue``).

Snapshot layout::

    SNAPSHOT_MAGIC  membersLength(4)  members JSON  { keyLength(4) key valueLength(4) value }*
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

__all__ = [
    "MAGIC", "SNAPSHOT_MAGIC", "CommandError", "KVStateMachine",
    "encodePut", "encodeDelete", "encodeCompareAndSet", "encodeAttributes", "decodeCommand",
]

MAGIC = b"RMKV"
SNAPSHOT_MAGIC = b"RMKVSNAP1"
PUT, DELETE, CAS, ATTRIBUTES = b"P", b"D", b"C", b"A"

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class CommandError(ValueError):
    """Bytes that start like a command but do not decode as one."""


def encodePut(key: bytes, value: bytes) -> bytes:
    return b"".join((MAGIC, PUT, _U32.pack(len(key)), key, value))


def encodeDelete(key: bytes) -> bytes:
    return b"".join((MAGIC, DELETE, _U32.pack(len(key)), key))


def encodeCompareAndSet(key: bytes, prev: bytes, value: bytes) -> bytes:
    """Set ``key`` to ``value`` if, when applied, it holds ``prev``."""
    return b"".join((MAGIC, CAS, _U32.pack(len(key)), key, _U32.pack(len(prev)), prev, value))


def encodeAttributes(memberID: int, name: str, clientURLs: Sequence[str]) -> bytes:
    body = json.dumps({"name": name, "clientURLs": list(clientURLs)},
                      separators=(",", ":")).encode()
    return MAGIC + ATTRIBUTES + _U64.pack(memberID) + body


def decodeCommand(data):
    """
    ``(op, fields)`` for our command, None for foreign data; raises
    ``CommandError`` for a damaged command of ours.
    """
    if not data.startswith(MAGIC) or len(data) < 5:
        return None
    op = data[4:5]
    if op in (PUT, DELETE):
        if len(data) < 9:
            raise CommandError("short key length")
        (n,) = _U32.unpack_from(data, 5)
        key = data[9:9 + n]
        if len(key) != n:
            raise CommandError("key truncated")
        if op == PUT:
            return op, (key, data[9 + n:])
        if len(data) != 9 + n:
            raise CommandError("trailing bytes after a delete")
        return op, (key,)
    if op == CAS:
        if len(data) < 9:
            raise CommandError("short key length")
        (n,) = _U32.unpack_from(data, 5)
        key = data[9:9 + n]
        if len(key) != n or len(data) < 13 + n:
            raise CommandError("key truncated")
        (m,) = _U32.unpack_from(data, 9 + n)
        prev = data[13 + n:13 + n + m]
        if len(prev) != m:
            raise CommandError("previous value truncated")
        return op, (key, prev, data[13 + n + m:])
    if op == ATTRIBUTES:
        if len(data) < 13:
            raise CommandError("short member ID")
        (memberID,) = _U64.unpack_from(data, 5)
        try:
            attrs = json.loads(data[13:])
            name, urls = attrs["name"], attrs["clientURLs"]
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise CommandError("bad attributes: %s" % (e,)) from None
        if not isinstance(name, str) or not isinstance(urls, list):
            raise CommandError("bad attributes types")
        return op, (memberID, name, [str(u) for u in urls])
    raise CommandError("unknown operation %r" % (op,))


class KVStateMachine:
    """
    ``data`` (bytes -> bytes) and ``attributes`` (member ID -> (name,
    clientURLs)).  ``apply(data)`` returns what the client should hear: for
    a put the previous value's existence, for a delete whether the key
    existed; for a compare-and-set whether it set the key; None for foreign
    or damaged entries (counted in ``skipped``).
    """

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.attributes: dict[int, tuple[str, list[str]]] = {}
        self.skipped = 0
        #: Has the log held entries that are not raftmux's (an etcd member's)?
        self.foreign = False

    def apply(self, data: bytes) -> Any:
        try:
            command = decodeCommand(data)
        except CommandError:
            self.skipped += 1
            return None
        if command is None:
            self.skipped += 1
            self.foreign = True
            return None
        op, fields = command
        if op == PUT:
            key, value = fields
            existed = key in self.data
            self.data[key] = value
            return existed
        if op == DELETE:
            return self.data.pop(fields[0], None) is not None
        if op == CAS:
            key, prev, value = fields
            if self.data.get(key) != prev:
                return False
            self.data[key] = value
            return True
        memberID, name, urls = fields
        self.attributes[memberID] = (name, urls)
        return True

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    # -- snapshots --------------------------------------------------------------

    def snapshot(self, members: Any = ()) -> bytes:
        """
        The state as bytes, with ``members`` (JSON-able dicts of the member
        table) in front.
        """
        head = json.dumps({
            "members": list(members),
            "foreign": self.foreign,
            "attributes": {"%x" % (k,): [n, u] for k, (n, u) in self.attributes.items()},
        }, separators=(",", ":")).encode()
        parts = [SNAPSHOT_MAGIC, _U32.pack(len(head)), head]
        pack = _U32.pack
        for key, value in self.data.items():
            parts.append(pack(len(key)))
            parts.append(key)
            parts.append(pack(len(value)))
            parts.append(value)
        return b"".join(parts)

    def restore(self, blob: bytes) -> Any:
        """
        Replace the state with a ``snapshot()``; returns the member dicts.
        Foreign data (an etcd snapshot) leaves an empty state and returns
        None; damaged data of ours raises ``CommandError``.
        """
        self.data = {}
        self.attributes = {}
        if not blob.startswith(SNAPSHOT_MAGIC):
            self.foreign = True
            return None
        pos = len(SNAPSHOT_MAGIC)
        try:
            (n,) = _U32.unpack_from(blob, pos)
            head = json.loads(blob[pos + 4:pos + 4 + n])
            pos += 4 + n
            for k, (name, urls) in head.get("attributes", {}).items():
                self.attributes[int(k, 16)] = (name, list(urls))
            data = {}
            end = len(blob)
            while pos < end:
                (kn,) = _U32.unpack_from(blob, pos)
                key = blob[pos + 4:pos + 4 + kn]
                pos += 4 + kn
                (vn,) = _U32.unpack_from(blob, pos)
                value = blob[pos + 4:pos + 4 + vn]
                pos += 4 + vn
                if len(key) != kn or len(value) != vn:
                    raise CommandError("snapshot truncated")
                data[key] = value
        except (struct.error, ValueError, TypeError, AttributeError, RecursionError) as e:
            raise CommandError("damaged snapshot: %s" % (e,)) from None
        self.data = data
        self.foreign = bool(head.get("foreign", False))
        return head.get("members", [])
