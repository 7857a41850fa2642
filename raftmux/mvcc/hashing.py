# -*- test-case-name: raftmux.test.test_mvcc_hash -*-
"""
etcd's HashKV over our records: CRC-32C (Castagnoli) of the bytes etcd's
``HashByRev`` feeds its hash, which are its bolt ``key`` bucket's keys and
values in key order: the bucket name, then for each stored revision its
17-byte revision key (main, ``_``, sub, big-endian; a tombstone adds
``t``) and the marshalled ``mvccpb.KeyValue`` (a tombstone's holds only
the key).  Which revisions are fed is the key space's business.

CRC-32C comes from ``google_crc32c`` or ``crc32c`` when one of them is
installed, else from the table below (pure Python, some MB/s: HashKV is a
maintenance call).
"""

import struct

__all__ = ["crc32c", "hashRecords", "revisionKey"]

_REV = struct.Struct(">QcQ")


def _makeTable():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _makeTable()


def _pureCRC32C(data, crc=0):
    table = _TABLE
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:
    import google_crc32c as _google
except ImportError:  # pragma: no cover - depends on the machine
    _google = None
try:
    import crc32c as _crc32c
except ImportError:  # pragma: no cover - depends on the machine
    _crc32c = None


def crc32c(data, crc=0):
    """CRC-32C of ``data``, continuing from ``crc`` (Go's ``crc32.Update``)."""
    if _google is not None:
        return _google.extend(crc, bytes(data))
    if _crc32c is not None:
        return _crc32c.crc32c(data, crc)
    return _pureCRC32C(data, crc)


def revisionKey(record):
    """The bolt key etcd stores ``record`` under."""
    key = _REV.pack(record.modRevision, b"_", record.sub)
    return key + b"t" if record.createRevision == 0 else key


def hashRecords(records):
    """etcd's HashKV value for ``records`` (stored revisions, in revision order)."""
    parts = [b"key"]
    for r in records:
        parts.append(revisionKey(r))
        parts.append(r.stored().SerializeToString())
    return crc32c(b"".join(parts))
