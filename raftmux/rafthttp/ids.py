# -*- test-case-name: raftmux.test.test_rafthttp_helpers -*-
"""
Member and cluster IDs as etcd writes and derives them (spec 11.1, 11.2).

An "ID string" is lower-case hex without leading zeros or ``0x``, what Go's
``strconv.FormatUint(id, 16)`` gives.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

__all__ = ["formatID", "parseID", "memberID", "clusterID"]

_MAX = (1 << 64) - 1


def formatID(id: int) -> str:
    """An ID as etcd's headers and paths carry it."""
    return "%x" % (id,)


def parseID(text: str | bytes) -> int | None:
    """
    Parse an ID string (``str`` or ``bytes``) as Go's ``ParseUint(s, 16, 64)``
    does; return None when it does not parse.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not text or len(text) > 16 or text.strip("0123456789abcdefABCDEF"):
        return None
    return int(text, 16)


def memberID(peerURLs: Iterable[str], token: str = "etcd-cluster", now: int | None = None) -> int:
    """
    etcd's ``newMember`` ID: SHA-1 of the sorted peer URLs, the cluster token
    and (for a runtime ``member add`` only) the Unix time, first 8 bytes big
    endian.
    """
    data = "".join(sorted(peerURLs)) + token
    if now is not None:
        data += "%d" % (now,)
    return struct.unpack(">Q", hashlib.sha1(data.encode()).digest()[:8])[0]


def clusterID(memberIDs: Iterable[int]) -> int:
    """SHA-1 of the ascending member IDs, 8 bytes big endian each."""
    data = b"".join(struct.pack(">Q", i) for i in sorted(memberIDs))
    return struct.unpack(">Q", hashlib.sha1(data).digest()[:8])[0]
