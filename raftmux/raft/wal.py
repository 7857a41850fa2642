# -*- test-case-name: raftmux.test.test_raft_wal -*-
"""
A segmented, append-only write-ahead log of CRC-checked records.

Two layers:

* A sans-IO record codec (``encodeRecord``, ``scanRecords``) and the
  payload codecs ``DiskStorage`` uses.  They take and give bytes only, so
  the recovery rules are tested without files.
* ``SegmentedLog``: the records in numbered segment files in one
  directory, with fsync, torn-tail repair on open, rollover at a size and
  removal of old segments.

A record is a 13-byte header, ``headerCRC | length | kind | payloadCRC``
(little-endian u32, u32, u8, u32), then the payload.  ``headerCRC`` covers
the rest of the header, so a damaged length is never trusted;
``payloadCRC`` covers the payload.  Both are zlib's CRC-32 (in C; no
CRC-32C module is installed).

Recovery rule, applied when a segment is scanned (see ``scanRecords``):

* Only the **last** segment may end in a torn record; every older segment
  was fsynced before the next one was created, so any damage in one is
  ``CorruptLogError``.
* In the last segment, a damaged record (short, or failing a CRC) is a
  torn tail if **no intact record starts anywhere after it** (the scan
  looks at every later offset; an all-zero rest is found at once).  That
  covers a write cut at any byte, a record whose last sector never made it
  to disk, and a file the crash extended with zeros.
* If an intact record does follow the damage, the log is corrupt
  (``CorruptLogError``): the node refuses to start rather than serve a log
  with a hole in it.
* A torn tail is cut off (truncate + fsync) when the log is opened, so new
  records never follow garbage.

The price of the rule: a byte flipped by the disk in the very last record,
after it was acknowledged, reads as a torn write and that record is
dropped (etcd is stricter: it calls a CRC failure torn only if a 512-byte
sector of the record is all zeros).  A flip anywhere before it stops the node.  And a crash
that persisted a later part of one unsynced write but not an earlier part
(disks may reorder sectors before an fsync) is reported as corruption, not
repaired: only an operator can tell which records were acknowledged.
"""

import os
import re
import struct
import time
import zlib
from typing import Any

from raftmux.raft.errors import CorruptLogError
from raftmux.raftpb import DecodeError, Entry, HardState, SnapshotMetadata, encode

_HEADER = struct.Struct("<IIBI")
HEADER_SIZE = _HEADER.size
_LENGTH_KIND_CRC = struct.Struct("<IBI")

#: Larger payloads are refused when written.
MAX_RECORD_SIZE = 1 << 30

# Record kinds.  SEGMENT is the log's own (the first record of every
# segment); the others are DiskStorage's payloads.
SEGMENT = 1
ENTRIES = 2
HARDSTATE = 3
SNAPSHOT_CREATED = 4
SNAPSHOT_APPLIED = 5
COMPACTED = 6

KINDS = frozenset([SEGMENT, ENTRIES, HARDSTATE, SNAPSHOT_CREATED,
                   SNAPSHOT_APPLIED, COMPACTED])


# -- record codec (sans-IO) ----------------------------------------------------


def encodeRecord(kind, payload):
    """One framed record: the checked header, then ``payload``."""
    if len(payload) > MAX_RECORD_SIZE:
        raise ValueError("record of %d bytes is too large" % (len(payload),))
    rest = _LENGTH_KIND_CRC.pack(len(payload), kind, zlib.crc32(payload))
    return struct.pack("<I", zlib.crc32(rest)) + rest + payload


def _intactAt(view, position, size):
    """``(kind, end, None)`` for an intact record at ``position``, else ``(None, None, why)``."""
    if size - position < HEADER_SIZE:
        return None, None, "short header"
    hcrc, length, kind, pcrc = _HEADER.unpack_from(view, position)
    if zlib.crc32(view[position + 4:position + HEADER_SIZE]) != hcrc:
        return None, None, "header CRC mismatch"
    end = position + HEADER_SIZE + length
    if end > size:
        return None, None, "short record"
    if zlib.crc32(view[position + HEADER_SIZE:end]) != pcrc:
        return None, None, "payload CRC mismatch"
    return kind, end, None


def _intactAfter(view, position, size):
    """Whether an intact record starts at any offset after ``position``."""
    if not bytes(view[position:]).strip(b"\x00"):
        return False
    for candidate in range(position + 1, size - HEADER_SIZE + 1):
        if _intactAt(view, candidate, size)[0] is not None:
            return True
    return False


class Scan:
    """
    What ``scanRecords`` found: ``records`` as ``(kind, payload, start,
    end)`` with byte offsets, ``validLength`` (the end of the last good
    record) and ``torn`` (whether bytes after it were dropped).
    """

    def __init__(self, records, validLength, torn):
        self.records = records
        self.validLength = validLength
        self.torn = torn


def scanRecords(data, last=True, name="log"):
    """
    Decode the records in ``data``, a whole segment.  ``last`` says whether
    this is the newest segment, the only one allowed a torn tail (rules in
    the module docstring).  Raises ``CorruptLogError``.
    """
    view = memoryview(data)
    size = len(data)
    records = []
    position = 0
    while position < size:
        kind, end, problem = _intactAt(view, position, size)
        if problem is None:
            records.append((kind, bytes(view[position + HEADER_SIZE:end]),
                            position, end))
            position = end
            continue
        if last and not _intactAfter(view, position, size):
            return Scan(records, position, True)
        raise CorruptLogError("%s: %s at offset %d of %d"
                              % (name, problem, position, size))
    return Scan(records, position, False)


# -- payload codecs (sans-IO) --------------------------------------------------


def _packFields(fields):
    return b"".join(struct.pack("<I", len(f)) + f for f in fields)


def _unpackFields(payload):
    fields = []
    position = 0
    while position < len(payload):
        if len(payload) - position < 4:
            raise CorruptLogError("truncated field in a record")
        (length,) = struct.unpack_from("<I", payload, position)
        position += 4
        if position + length > len(payload):
            raise CorruptLogError("truncated field in a record")
        fields.append(payload[position:position + length])
        position += length
    return fields


def parseMessage(cls, data):
    """``cls.FromString(data)``, a decode error becoming ``CorruptLogError``."""
    try:
        return cls.FromString(data)
    except DecodeError as e:
        raise CorruptLogError("undecodable %s: %s" % (cls.__name__, e))


def encodeEntries(encodedEntries):
    """An ENTRIES payload from already-encoded entries (etcd bytes)."""
    return _packFields(encodedEntries)


def decodeEntries(payload):
    """``[(Entry, encodedBytes)]`` from an ENTRIES payload."""
    return [(parseMessage(Entry, data), data) for data in _unpackFields(payload)]


def encodeHardState(hardState):
    return encode(hardState)


def decodeHardState(payload):
    return parseMessage(HardState, payload)


def encodeSnapshotMetadata(metadata):
    return encode(metadata)


def decodeSnapshotMetadata(payload):
    return parseMessage(SnapshotMetadata, payload)


_INDEX_TERM = struct.Struct("<QQ")


def encodeIndexTerm(index, term):
    return _INDEX_TERM.pack(index, term)


def decodeIndexTerm(payload):
    if len(payload) != _INDEX_TERM.size:
        raise CorruptLogError("bad index/term record")
    return _INDEX_TERM.unpack(payload)


def encodeCheckpoint(hardState, metadata, offsetIndex, offsetTerm):
    """
    The state a segment starts from: HardState, the snapshot's metadata and
    the compaction point, so older segments can be deleted.
    """
    return _packFields([encode(hardState), encode(metadata),
                        _INDEX_TERM.pack(offsetIndex, offsetTerm)])


def decodeCheckpoint(payload):
    """``(HardState, SnapshotMetadata, offsetIndex, offsetTerm)``."""
    fields = _unpackFields(payload)
    if len(fields) != 3:
        raise CorruptLogError("bad segment checkpoint")
    index, term = decodeIndexTerm(fields[2])
    return (parseMessage(HardState, fields[0]),
            parseMessage(SnapshotMetadata, fields[1]), index, term)


# -- files ---------------------------------------------------------------------


def fsyncDirectory(path):
    """Make a create, rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_datasync = getattr(os, "fdatasync", os.fsync)


def writeAll(fd, data):
    """``os.write`` until all of ``data`` is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


_SEGMENT_NAME = re.compile(r"^([0-9a-f]{16})\.wal$")


def segmentName(seq):
    return "%016x.wal" % (seq,)


class Segment:
    """A segment found on open: its number, checkpoint and other records."""

    def __init__(self, seq, checkpoint, records):
        self.seq = seq
        self.checkpoint = checkpoint
        self.records = records


class SegmentedLog:
    """
    Records in segment files ``<seq:016x>.wal`` in ``directory``.

    Every segment starts with a SEGMENT record holding its number and a
    checkpoint (opaque bytes from the ``checkpoint`` callable: the state
    the records in it apply to), so any prefix of old segments can be
    deleted.  Writes go to the newest segment; a new one is started before
    a write once the current one holds ``segmentSize`` bytes or more.

    After an ``OSError`` while writing, the log refuses further writes: the
    file's state is unknown, and an fsync that failed cannot be retried
    (the kernel may have dropped the dirty pages).

    ``onSync(seconds)``, when given, hears how long each fdatasync of the
    newest segment took (etcd's ``wal_fsync_duration_seconds``).
    """

    def __init__(self, directory, checkpoint, segmentSize=64 << 20, onSync=None):
        self.directory = directory
        self.segmentSize = segmentSize
        self.onSync = onSync
        self._checkpoint = checkpoint
        self._seqs = []
        self._fd: Any = None
        self._size = 0
        self._dirty = False
        self._failed = None

    # -- opening ---------------------------------------------------------------

    def open(self):
        """
        Scan every segment, cut a torn tail off the newest, and return the
        ``Segment``s, oldest first.  Raises ``CorruptLogError``.
        """
        seqs = sorted(int(m.group(1), 16) for m in
                      map(_SEGMENT_NAME.match, os.listdir(self.directory)) if m)
        if seqs and seqs != list(range(seqs[0], seqs[0] + len(seqs))):
            raise CorruptLogError("missing segment between %s" % (seqs,))
        segments = []
        for i, seq in enumerate(seqs):
            path = self._path(seq)
            with open(path, "rb") as f:
                data = f.read()
            last = i == len(seqs) - 1
            scan = scanRecords(data, last=last, name=path)
            if scan.torn:
                self._truncate(path, scan.validLength)
            records = [(kind, payload) for kind, payload, _, _ in scan.records]
            if not records and last:
                # Crashed while starting this segment: nothing in it counts.
                os.unlink(path)
                fsyncDirectory(self.directory)
                continue
            if not records:
                raise CorruptLogError("%s is empty but not the newest" % (path,))
            kind, payload = records[0]
            if kind != SEGMENT or len(payload) < 8 or \
                    struct.unpack_from("<Q", payload)[0] != seq:
                raise CorruptLogError("%s does not start with its header" % (path,))
            segments.append(Segment(seq, payload[8:], records[1:]))
        self._seqs = [s.seq for s in segments]
        if self._seqs:
            path = self._path(self._seqs[-1])
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            self._size = os.fstat(self._fd).st_size
        return segments

    def _truncate(self, path, length):
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, length)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _path(self, seq):
        return os.path.join(self.directory, segmentName(seq))

    # -- writing ---------------------------------------------------------------

    def segments(self):
        """The numbers of the segments on disk, oldest first."""
        return list(self._seqs)

    def write(self, records, sync=True):
        """
        Append ``records`` (``(kind, payload)`` pairs) with one ``write``
        and, if ``sync``, one fdatasync.  Returns the number of the segment
        they went to (all of them go to one).
        """
        self._checkUsable()
        if self._fd is None or self._size >= self.segmentSize:
            self._rollover()
        data = b"".join(encodeRecord(kind, payload) for kind, payload in records)
        try:
            writeAll(self._fd, data)
            self._size += len(data)
            self._dirty = True
            if sync:
                self.sync()
        except OSError as e:
            self._failed = e
            raise
        return self._seqs[-1]

    def sync(self):
        """fdatasync the newest segment if anything was written unsynced."""
        self._checkUsable()
        if self._dirty:
            began = time.perf_counter()
            try:
                _datasync(self._fd)
            except OSError as e:
                self._failed = e
                raise
            self._dirty = False
            if self.onSync is not None:
                self.onSync(time.perf_counter() - began)

    def _checkUsable(self):
        if self._failed is not None:
            raise OSError("the log failed earlier and refuses writes: %s"
                          % (self._failed,))

    def _rollover(self):
        """Sync the current segment, then start the next with a checkpoint."""
        seq = self._seqs[-1] + 1 if self._seqs else 0
        header = encodeRecord(SEGMENT, struct.pack("<Q", seq) + self._checkpoint())
        try:
            if self._fd is not None:
                self.sync()
            fd = os.open(self._path(seq),
                         os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
            writeAll(fd, header)
            os.fsync(fd)
            fsyncDirectory(self.directory)
        except OSError as e:
            self._failed = e
            raise
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        self._size = len(header)
        self._dirty = False
        self._seqs.append(seq)

    def removeBefore(self, seq):
        """
        Delete the segments numbered below ``seq`` (never the newest),
        oldest first, so a crash part-way leaves a valid suffix.
        """
        removed = []
        while len(self._seqs) > 1 and self._seqs[0] < seq:
            os.unlink(self._path(self._seqs[0]))
            removed.append(self._seqs.pop(0))
        if removed:
            fsyncDirectory(self.directory)
        return removed

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
