"""
Fuzz targets for the raft log on disk: the WAL's record scanner and
payload codecs, and ``DiskStorage`` reopening a directory whose segments
hold fuzzed records.
"""

import os
import shutil
import struct
import tempfile

from raftmux.fuzz import target
from raftmux.fuzz._support import check, split
from raftmux.raft import wal
from raftmux.raft.errors import CorruptLogError

_DECODERS = {
    wal.ENTRIES: wal.decodeEntries,
    wal.HARDSTATE: wal.decodeHardState,
    wal.SNAPSHOT_CREATED: wal.decodeSnapshotMetadata,
    wal.SNAPSHOT_APPLIED: wal.decodeSnapshotMetadata,
    wal.COMPACTED: wal.decodeIndexTerm,
    wal.SEGMENT: lambda payload: wal.decodeCheckpoint(payload[8:]),
}


def _scratch():
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return tempfile.mkdtemp(prefix="raftmux-fuzz-", dir=base)


def _sampleLog():
    """The segment files of a small real log: entries, hard states, a snapshot, compaction."""
    from raftmux.raft.diskstorage import DiskStorage
    from raftmux.raftpb import ConfState, Entry, HardState

    directory = _scratch()
    try:
        storage = DiskStorage(directory, segmentSize=600, fsync=False)
        storage.save(HardState(term=1, vote=1, commit=0),
                     [Entry(Term=1, Index=i, Data=b"e%d" % i) for i in range(1, 6)])
        storage.save(HardState(term=2, vote=1, commit=4),
                     [Entry(Term=2, Index=i, Data=b"f%d" % i) for i in range(4, 9)])
        storage.createSnapshot(6, ConfState(voters=[1, 2, 3]), b"state")
        storage.compact(5)
        storage.save(entries=[Entry(Term=2, Index=9, Data=b"g")])
        storage.close()
        segments = []
        for name in sorted(os.listdir(directory)):
            if name.endswith(".wal"):
                with open(os.path.join(directory, name), "rb") as f:
                    segments.append(f.read())
        return segments
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@target("raft-wal-records", """
    scanRecords on a raw segment (newest or not): only CorruptLogError; the
    records found re-encode to exactly the bytes before validLength; a torn
    tail only in the newest segment; every payload decodes with its kind's
    codec or raises CorruptLogError.""",
        seeds=lambda: [bytes([last]) + seg + tail for seg in _sampleLog()
                       for last in (0, 1) for tail in (b"", b"\x00" * 20, b"\x07garbage")])
def raftWalRecords(data):
    control, segment = split(data)
    last = bool(control & 1)
    try:
        scan = wal.scanRecords(segment, last=last, name="fuzz")
    except CorruptLogError:
        return
    check(last or not scan.torn, "an older segment was called torn")
    check(0 <= scan.validLength <= len(segment), "validLength %d of %d", scan.validLength,
          len(segment))
    check(scan.torn == (scan.validLength < len(segment)), "torn flag disagrees with validLength")
    position = 0
    for kind, payload, start, end in scan.records:
        check(start == position and wal.encodeRecord(kind, payload) == segment[start:end],
              "record at %d does not re-encode to its bytes", start)
        position = end
        decoder = _DECODERS.get(kind)
        if decoder is not None:
            try:
                decoder(payload)
            except CorruptLogError:
                pass
    check(position == scan.validLength, "records end at %d, validLength is %d", position,
          scan.validLength)


# -- DiskStorage over fuzzed records -------------------------------------------------

_NEXT_SEGMENT = 0
_RAW_TAIL = 0xFF
_u16 = struct.Struct(">H")


def _records(program):
    """
    Segments from a program: records ``kind(1) length(2) payload``; kind 0
    starts the next segment, kind 0xFF puts the rest in raw (a torn or
    damaged tail).  Every record is framed with correct CRCs, so the fuzzer
    explores what ``DiskStorage`` makes of well-framed but wrong records.
    """
    segments = [[]]
    tail = b""
    pos = 0
    while pos < len(program):
        kind = program[pos]
        if kind == _RAW_TAIL:
            tail = program[pos + 1:]
            break
        if kind == _NEXT_SEGMENT:
            segments.append([])
            pos += 1
            continue
        (length,) = _u16.unpack(program[pos + 1:pos + 3].ljust(2, b"\x00"))
        payload = program[pos + 3:pos + 3 + length]
        segments[-1].append(wal.encodeRecord(kind, payload))
        pos += 3 + length
    files = [b"".join(s) for s in segments]
    files[-1] += tail
    return files


def _program(segments):
    """The program that writes these real segment files (the inverse of ``_records``)."""
    out = []
    for n, segment in enumerate(segments):
        if n:
            out.append(bytes([_NEXT_SEGMENT]))
        for kind, payload, _, _ in wal.scanRecords(segment, last=True).records:
            out.append(bytes([kind]) + _u16.pack(len(payload)) + payload)
    return b"".join(out)


def _state(storage):
    hardState, confState = storage.initialState()
    first, last = storage.firstIndex(), storage.lastIndex()
    entries = storage.entries(first, last + 1) if last >= first else []
    return (hardState.SerializeToString(), confState.SerializeToString(), first, last,
            [e.SerializeToString() for e in entries], storage.snapshot().SerializeToString())


@target("raft-wal-open", """
    DiskStorage opening a directory of segments holding well-framed fuzzed
    records (and maybe a damaged tail): only CorruptLogError; an opened log
    is consistent (entries first..last consecutive) and opening it again
    gives the same state.""",
        seeds=lambda: [b"\x00" + _program(_sampleLog()),
                       b"\x00" + _program(_sampleLog()) + bytes([_RAW_TAIL]) + b"\x01\x02\x03"])
def raftWalOpen(data):
    from raftmux.raft.diskstorage import DiskStorage

    _, program = split(data)
    files = _records(program)
    directory = _scratch()
    try:
        for seq, content in enumerate(files):
            with open(os.path.join(directory, wal.segmentName(seq)), "wb") as f:
                f.write(content)
        try:
            storage = DiskStorage(directory, fsync=False)
        except CorruptLogError:
            return
        try:
            first, last = storage.firstIndex(), storage.lastIndex()
            check(first <= last + 1, "firstIndex %d > lastIndex %d + 1", first, last)
            before = _state(storage)
            entries = before[4]
            check(len(entries) == last - first + 1, "entries missing between %d and %d",
                  first, last)
        finally:
            storage.close()
        again = DiskStorage(directory, fsync=False)
        try:
            check(_state(again) == before, "reopening changed the log")
        finally:
            again.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
