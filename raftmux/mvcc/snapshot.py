# -*- test-case-name: raftmux.test.test_mvcc_snapshot -*-
"""
The key space's snapshot format: everything needed to rebuild it, so a
raft snapshot carries history, compaction point and leases, not only the
live keys.

Layout (big-endian)::

    magic "RMMVCC"  version u8 (1)
    revision i64  compactRevision i64  consistentIndex u64
    leaseCount u32  recordCount u64
    leaseCount x   { id i64  ttl i64  remainingTTL i64 }
    recordCount x  { modRevision i64  sub u32  createRevision i64  version i64
                     lease i64  keyLength u32  valueLength u32  key  value }
    crc u32        zlib CRC-32 of every byte before it

Records are in revision order (``modRevision``, ``sub``) and are every
record of every key's history: the revision log and lease attachments are
derived from them on restore.  ``decode`` refuses (``SnapshotError``) a
wrong magic or version, a bad checksum, a short or long buffer and
records that break the key space's invariants.
"""

import struct
import zlib
from collections import namedtuple
from typing import Any

from raftmux.mvcc.record import Record

__all__ = ["MAGIC", "VERSION", "SnapshotError", "State", "encode", "decode"]

MAGIC = b"RMMVCC"
VERSION = 1

_HEADER = struct.Struct(">6sBqqQIQ")
_LEASE = struct.Struct(">qqq")
_RECORD = struct.Struct(">qIqqqII")
_CRC = struct.Struct(">I")


class SnapshotError(ValueError):
    """Bytes that are not a key-space snapshot this code can read."""


class State(namedtuple("State", "revision compactRevision consistentIndex leases records")):
    """
    A decoded snapshot: ``leases`` are ``(id, ttl, remainingTTL)``,
    ``records`` L{Record}s in revision order.
    """


def encode(revision, compactRevision, consistentIndex, leases, records):
    """
    The snapshot bytes; ``leases`` are objects with ``id``, ``ttl`` and
    ``remainingTTL``, ``records`` L{Record}s in revision order.
    """
    parts = [_HEADER.pack(MAGIC, VERSION, revision, compactRevision,
                          consistentIndex, len(leases), len(records))]
    append = parts.append
    for lease in leases:
        append(_LEASE.pack(lease.id, lease.ttl, lease.remainingTTL))
    pack = _RECORD.pack
    for r in records:
        append(pack(r.modRevision, r.sub, r.createRevision, r.version, r.lease,
                    len(r.key), len(r.value)))
        append(r.key)
        append(r.value)
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def decode(data):
    """The L{State} in ``data``, or ``SnapshotError``."""
    data = bytes(data)
    if len(data) < _HEADER.size + _CRC.size:
        raise SnapshotError("too short for a key-space snapshot")
    magic, version, revision, compactRevision, consistentIndex, leaseCount, recordCount = (
        _HEADER.unpack_from(data, 0))
    if magic != MAGIC:
        raise SnapshotError("not a key-space snapshot (magic %r)" % (magic,))
    if version != VERSION:
        raise SnapshotError("unsupported key-space snapshot version %d" % (version,))
    body, (crc,) = data[:-_CRC.size], _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(body) != crc:
        raise SnapshotError("key-space snapshot checksum mismatch")
    if revision < 1 or not -1 <= compactRevision <= revision:
        raise SnapshotError("bad revisions %d/%d" % (revision, compactRevision))
    # Every revision after the compaction point changed a key, so it has a
    # record; a revision beyond them would make restore allocate its log.
    if revision - max(compactRevision, 1) > recordCount:
        raise SnapshotError("revision %d is not backed by %d records (compacted at %d)"
                            % (revision, recordCount, compactRevision))
    end = len(body)
    pos = _HEADER.size
    if pos + leaseCount * _LEASE.size > end:
        raise SnapshotError("truncated lease table")
    leases = []
    seen = set()
    for _ in range(leaseCount):
        leaseID, ttl, remaining = _LEASE.unpack_from(body, pos)
        pos += _LEASE.size
        if leaseID == 0 or leaseID in seen:
            raise SnapshotError("bad or repeated lease ID %d" % (leaseID,))
        seen.add(leaseID)
        leases.append((leaseID, ttl, remaining))
    records: list[Any] = []
    append = records.append
    unpack = _RECORD.unpack_from
    size = _RECORD.size
    last = (0, 0)
    for _ in range(recordCount):
        if pos + size > end:
            raise SnapshotError("truncated record")
        mod, sub, create, version_, lease, keyLength, valueLength = unpack(body, pos)
        pos += size
        key = body[pos:pos + keyLength]
        pos += keyLength
        value = body[pos:pos + valueLength]
        pos += valueLength
        if pos > end:
            raise SnapshotError("truncated record")
        if (mod, sub) <= last or mod > revision:
            raise SnapshotError("record revision (%d, %d) out of order" % (mod, sub))
        last = (mod, sub)
        if create == 0:
            if version_ or lease or value:
                raise SnapshotError("tombstone with data at (%d, %d)" % (mod, sub))
        elif not (0 < create <= mod and version_ > 0):
            raise SnapshotError("bad record at (%d, %d)" % (mod, sub))
        append(Record(key, value, create, mod, sub, version_, lease))
    if pos != end:
        raise SnapshotError("%d bytes after the last record" % (end - pos,))
    return State(revision, compactRevision, consistentIndex, leases, records)
