# -*- test-case-name: raftmux.test.test_raft_storage -*-
"""
Tests for L{raftmux.raft.diskstorage}: etcd's ``storage_test.go`` cases run
against both storages (so they stay interchangeable), then what only the
disk does: restart, torn tails, corruption, segment and snapshot files.
"""

import os
import shutil

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from raftmux.raft import diskstorage, wal
from raftmux.raft.diskstorage import DiskStorage, measureFsyncAppend
from raftmux.raft.errors import (
    CompactedError,
    CorruptLogError,
    SnapshotOutOfDateError,
    UnavailableError,
)
from raftmux.raft.interfaces import IStorage
from raftmux.raftpb import (
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
    encode,
    normalize,
)

try:
    from raftmux.raft.memorystorage import MemoryStorage
except ImportError:  # written in parallel; the shared cases skip without it
    MemoryStorage = None


def entry(index, term, data=None):
    """A normalized Entry, so protobuf's ByteSize is etcd's encoded size."""
    e = normalize(Entry(Index=index, Term=term))
    if data is not None:
        e.Data = data
    return e


def encodedEntries(entries):
    return [encode(e) for e in entries]


def state(storage):
    """Everything a reader of ``storage`` can see, as comparable bytes."""
    first, last = storage.firstIndex(), storage.lastIndex()
    hs, cs = storage.initialState()
    entries = storage.entries(first, last + 1) if last >= first else []
    return (first, last, storage.term(first - 1), encodedEntries(entries),
            encode(hs), encode(cs), encode(storage.snapshot()))


class StorageBehaviourMixin:
    """
    etcd raft's ``storage_test.go``.  Go builds its fixture by assigning
    ``ms.ents``; here it is an applied snapshot at 3 (term 3) plus appends.
    """

    def makeStorage(self):
        raise NotImplementedError()

    def storageWith(self, last):
        storage = self.makeStorage()
        snap = Snapshot()
        snap.metadata.index = 3
        snap.metadata.term = 3
        storage.applySnapshot(snap)
        storage.append([entry(i, i) for i in range(4, last + 1)])
        return storage

    def entriesOf(self, storage):
        return [(e.Index, e.Term)
                for e in storage.entries(storage.firstIndex(), storage.lastIndex() + 1)]

    def test_interface(self):
        self.assertTrue(verifyObject(IStorage, self.makeStorage()))

    def test_empty(self):
        storage = self.makeStorage()
        self.assertEqual((storage.firstIndex(), storage.lastIndex(), storage.term(0)),
                         (1, 0, 0))
        self.assertRaises(UnavailableError, storage.entries, 1, 1)
        self.assertRaises(UnavailableError, storage.term, 1)
        self.assertEqual(encode(storage.snapshot()), encode(Snapshot()))

    def test_term(self):
        storage = self.storageWith(5)
        self.assertRaises(CompactedError, storage.term, 2)
        self.assertEqual([storage.term(i) for i in (3, 4, 5)], [3, 4, 5])
        self.assertRaises(UnavailableError, storage.term, 6)

    def test_entries(self):
        storage = self.storageWith(6)
        sizes = {i: len(encode(entry(i, i))) for i in (4, 5, 6)}
        self.assertRaises(CompactedError, storage.entries, 2, 6)
        self.assertRaises(CompactedError, storage.entries, 3, 4)
        self.assertRaises(UnavailableError, storage.entries, 4, 8)
        cases = [
            (4, 5, None, [4]),
            (4, 6, None, [4, 5]),
            (4, 7, None, [4, 5, 6]),
            (4, 7, 0, [4]),  # at least one entry, whatever the limit
            (4, 7, sizes[4] + sizes[5], [4, 5]),
            (4, 7, sizes[4] + sizes[5] + sizes[6] // 2, [4, 5]),
            (4, 7, sizes[4] + sizes[5] + sizes[6] - 1, [4, 5]),
            (4, 7, sizes[4] + sizes[5] + sizes[6], [4, 5, 6]),
            (5, 5, None, []),
        ]
        for lo, hi, maxSize, expected in cases:
            got = storage.entries(lo, hi, maxSize)
            self.assertEqual([e.Index for e in got], expected, (lo, hi, maxSize))

    def test_lastIndex(self):
        storage = self.storageWith(5)
        self.assertEqual(storage.lastIndex(), 5)
        storage.append([entry(6, 5)])
        self.assertEqual(storage.lastIndex(), 6)

    def test_firstIndex(self):
        storage = self.storageWith(5)
        self.assertEqual(storage.firstIndex(), 4)
        storage.compact(4)
        self.assertEqual(storage.firstIndex(), 5)

    def test_compact(self):
        for index, error, first, length in [(2, CompactedError, 4, 2),
                                            (3, CompactedError, 4, 2),
                                            (4, None, 5, 1), (5, None, 6, 0)]:
            storage = self.storageWith(5)
            if error:
                self.assertRaises(error, storage.compact, index)
            else:
                storage.compact(index)
            self.assertEqual(storage.firstIndex(), first)
            self.assertEqual(storage.term(first - 1), first - 1)
            self.assertEqual(storage.lastIndex() - storage.firstIndex() + 1, length)
        self.assertRaises(UnavailableError, self.storageWith(5).compact, 6)

    def test_createSnapshot(self):
        cs = ConfState(voters=[1, 2, 3])
        for index in (4, 5):
            storage = self.storageWith(5)
            snap = storage.createSnapshot(index, cs, b"data")
            expected = Snapshot(data=b"data", metadata=SnapshotMetadata(
                index=index, term=index, conf_state=cs))
            self.assertEqual(encode(snap), encode(expected))
            self.assertEqual(encode(storage.snapshot()), encode(expected))
            self.assertEqual(encode(storage.initialState()[1]), encode(cs))
            self.assertEqual(storage.firstIndex(), 4)  # nothing compacted
        storage = self.storageWith(5)
        self.assertRaises(SnapshotOutOfDateError, storage.createSnapshot, 3, cs, b"")
        self.assertRaises(UnavailableError, storage.createSnapshot, 6, cs, b"")

    def test_append(self):
        cases = [
            ([(3, 3), (4, 4), (5, 5)], [(4, 4), (5, 5)]),
            ([(3, 3), (4, 6), (5, 6)], [(4, 6), (5, 6)]),
            ([(3, 3), (4, 4), (5, 5), (6, 5)], [(4, 4), (5, 5), (6, 5)]),
            # truncate incoming entries, truncate the existing ones and append
            ([(2, 3), (3, 3), (4, 5)], [(4, 5)]),
            # truncate the existing entries and append
            ([(4, 5)], [(4, 5)]),
            # direct append
            ([(6, 5)], [(4, 4), (5, 5), (6, 5)]),
            # all compacted already: nothing happens
            ([(1, 1), (2, 2)], [(4, 4), (5, 5)]),
            ([], [(4, 4), (5, 5)]),
        ]
        for given, expected in cases:
            storage = self.storageWith(5)
            storage.append([entry(i, t) for i, t in given])
            self.assertEqual(self.entriesOf(storage), expected, given)
            self.assertEqual(storage.term(3), 3)

    def test_appendGap(self):
        storage = self.storageWith(5)
        self.assertRaises(UnavailableError, storage.append, [entry(7, 5)])
        self.assertEqual(storage.lastIndex(), 5)

    def test_applySnapshot(self):
        cs = ConfState(voters=[1, 2, 3])
        storage = self.makeStorage()
        snap = Snapshot(data=b"data", metadata=SnapshotMetadata(index=4, term=4, conf_state=cs))
        storage.applySnapshot(snap)
        self.assertEqual(encode(storage.snapshot()), encode(snap))
        self.assertEqual((storage.firstIndex(), storage.lastIndex(), storage.term(4)), (5, 4, 4))
        old = Snapshot(data=b"data", metadata=SnapshotMetadata(index=3, term=3, conf_state=cs))
        self.assertRaises(SnapshotOutOfDateError, storage.applySnapshot, old)
        self.assertRaises(SnapshotOutOfDateError, storage.applySnapshot, snap)

    def test_applySnapshotDropsEntriesKeepsHardState(self):
        storage = self.storageWith(8)
        hs = HardState(term=4, vote=2, commit=6)
        storage.setHardState(hs)
        storage.applySnapshot(Snapshot(metadata=SnapshotMetadata(index=6, term=9)))
        self.assertEqual((storage.firstIndex(), storage.lastIndex(), storage.term(6)), (7, 6, 9))
        self.assertEqual(encode(storage.initialState()[0]), encode(hs))

    def test_hardState(self):
        storage = self.makeStorage()
        hs = HardState(term=7, vote=3, commit=0)
        storage.setHardState(hs)
        hs.term = 99  # the storage kept a copy
        self.assertEqual(encode(storage.initialState()[0]),
                         encode(HardState(term=7, vote=3, commit=0)))


class MemoryStorageBehaviourTests(StorageBehaviourMixin, SynchronousTestCase):
    """The shared cases against L{MemoryStorage}, the reference."""

    if MemoryStorage is None:
        skip = "raftmux.raft.memorystorage is not there yet"

    def makeStorage(self):
        return MemoryStorage()


class DiskStorageBehaviourTests(StorageBehaviourMixin, SynchronousTestCase):
    """
    The shared cases against L{DiskStorage}; each storage is also reopened
    from its directory at cleanup and must read the same.
    """

    def makeStorage(self):
        directory = self.mktemp()
        storage = DiskStorage(directory, segmentSize=256)
        self.addCleanup(self.checkReopens, storage, directory)
        return storage

    def checkReopens(self, storage, directory):
        before = state(storage)
        storage.close()
        reopened = DiskStorage(directory, segmentSize=256)
        reopened.close()
        self.assertEqual(state(reopened), before)


class DiskStorageTests(SynchronousTestCase):
    """What only the disk storage does."""

    def setUp(self):
        self.directory = self.mktemp()

    def open(self, directory=None, **kwargs):
        kwargs.setdefault("segmentSize", 300)
        storage = DiskStorage(directory or self.directory, **kwargs)
        self.addCleanup(storage.close)
        return storage

    def reopen(self, storage, **kwargs):
        storage.close()
        return self.open(storage.directory, **kwargs)

    def files(self, suffix):
        return sorted(n for n in os.listdir(self.directory) if n.endswith(suffix))

    def test_restartRestoresEverything(self):
        """HardState, entries, snapshot and compaction point, byte for byte."""
        storage = self.open()
        storage.append([entry(i, 1 + i // 10, b"d%d" % i) for i in range(1, 40)])
        storage.append([entry(30, 7, b"new"), entry(31, 7)])  # conflict: truncates
        storage.setHardState(HardState(term=7, vote=2, commit=29))
        storage.createSnapshot(20, ConfState(voters=[1, 2], learners=[5]), b"state")
        storage.compact(18)
        before = state(storage)
        self.assertEqual((before[0], before[1]), (19, 31))
        self.assertEqual(storage.entries(30, 32)[0].Data, b"new")
        storage = self.reopen(storage)
        self.assertEqual(state(storage), before)
        storage = self.reopen(storage, segmentSize=1 << 20)
        self.assertEqual(state(storage), before)

    def test_saveIsOneWrite(self):
        """save(): entries then HardState, one write, one fsync."""
        calls = []
        storage = self.open()
        self.patch(wal, "_datasync", lambda fd: calls.append(fd))
        storage.save(HardState(term=1, commit=2), [entry(1, 1), entry(2, 1)])
        self.assertEqual(len(calls), 1)
        storage.save()
        self.assertEqual(len(calls), 1)
        storage = self.reopen(storage)
        self.assertEqual((storage.lastIndex(), storage.initialState()[0].commit), (2, 2))

    def test_fsyncEachWrite(self):
        """With fsync=True each append and setHardState is synced before it returns."""
        calls = []
        storage = self.open()
        storage.append([entry(1, 1)])  # first write makes the segment
        self.patch(wal, "_datasync", lambda fd: calls.append(fd))
        storage.append([entry(2, 1)])
        storage.setHardState(HardState(term=1))
        self.assertEqual(len(calls), 2)

    def test_deferredSync(self):
        """With fsync=False nothing is synced until sync()."""
        calls = []
        storage = self.open(fsync=False)
        storage.append([entry(1, 1)])
        self.patch(wal, "_datasync", lambda fd: calls.append(fd))
        storage.append([entry(2, 1)])
        storage.setHardState(HardState(term=1))
        self.assertEqual(calls, [])
        storage.sync()
        self.assertEqual(len(calls), 1)

    def test_onSyncHearsEveryDatasync(self):
        """``onSync`` gets one duration per fdatasync of the log, none otherwise."""
        heard = []
        storage = self.open(fsync=False, onSync=heard.append)
        storage.append([entry(1, 1)])
        self.assertEqual(heard, [])
        storage.sync()
        storage.sync()
        self.assertEqual(len(heard), 1)
        self.assertTrue(all(isinstance(t, float) and t >= 0 for t in heard))
        storage = self.reopen(storage, onSync=heard.append)
        storage.append([entry(2, 1)])
        storage.sync()
        self.assertEqual(len(heard), 2)

    def test_failedWriteChangesNothing(self):
        storage = self.open()
        storage.append([entry(1, 1)])
        before = state(storage)

        def failing(fd):
            raise OSError(28, "ENOSPC")
        self.patch(wal, "_datasync", failing)
        self.assertRaises(OSError, storage.append, [entry(2, 1)])
        self.assertRaises(OSError, storage.setHardState, HardState(term=3))
        self.assertEqual(state(storage), before)

    def test_nonConsecutiveEntriesRefused(self):
        storage = self.open()
        self.assertRaises(ValueError, storage.append, [entry(1, 1), entry(3, 1)])
        self.assertEqual(storage.lastIndex(), 0)

    def test_createSnapshotPastCompaction(self):
        """A snapshot index already compacted away cannot be made."""
        storage = self.open()
        storage.append([entry(i, 1) for i in range(1, 8)])
        storage.compact(5)
        self.assertRaises(CompactedError, storage.createSnapshot, 4, None, b"")
        self.assertEqual(storage.createSnapshot(5, None, b"x").metadata.index, 5)

    def test_compactionRemovesOldSegments(self):
        """Segments holding only compacted entries are deleted, whole."""
        storage = self.open(segmentSize=200)
        for i in range(1, 61):
            storage.append([entry(i, 1, b"x" * 20)])
        segments = storage.segments()
        self.assertTrue(len(segments) >= 10, segments)
        self.assertEqual(self.files(".wal"), [wal.segmentName(s) for s in segments])
        storage.createSnapshot(30, None, b"snap")
        # A snapshot alone drops nothing (its record may start a segment).
        self.assertEqual(storage.segments()[:len(segments)], segments)
        segments = storage.segments()
        storage.compact(30)
        kept = storage.segments()
        self.assertTrue(segments[0] < kept[0] < segments[-1], (segments, kept))
        self.assertEqual(self.files(".wal"), [wal.segmentName(s) for s in kept])
        before = state(storage)
        storage = self.reopen(storage, segmentSize=200)
        self.assertEqual(state(storage), before)
        self.assertEqual(storage.segments(), kept)
        storage.compact(storage.lastIndex())
        self.assertEqual(storage.segments(), [segments[-1]])
        before = state(storage)
        storage = self.reopen(storage, segmentSize=200)
        self.assertEqual(state(storage), before)

    def test_applySnapshotRemovesSegmentsAndFiles(self):
        storage = self.open(segmentSize=200)
        for i in range(1, 31):
            storage.append([entry(i, 1, b"x" * 20)])
        storage.createSnapshot(10, None, b"old")
        self.assertEqual(self.files(".snap"), [diskstorage.snapshotName(1, 10)])
        snap = Snapshot(data=b"new" * 100, metadata=SnapshotMetadata(
            index=50, term=4, conf_state=ConfState(voters=[1])))
        storage.applySnapshot(snap)
        self.assertEqual(len(storage.segments()), 1)
        self.assertEqual(self.files(".snap"), [diskstorage.snapshotName(4, 50)])
        storage.append([entry(51, 4)])
        storage = self.reopen(storage)
        self.assertEqual(encode(storage.snapshot()), encode(snap))
        self.assertEqual((storage.firstIndex(), storage.lastIndex(), storage.term(50)),
                         (51, 51, 4))

    def test_snapshotFileWithoutLogRecordIgnored(self):
        """A crash between writing the snapshot file and logging it: the file is ignored."""
        storage = self.open()
        storage.append([entry(i, 2) for i in range(1, 6)])
        before = state(storage)
        storage.close()
        orphan = Snapshot(data=b"orphan", metadata=SnapshotMetadata(index=4, term=2))
        diskstorage.writeSnapshotFile(self.directory, orphan)
        with open(os.path.join(self.directory, "x.snap.tmp"), "wb") as f:
            f.write(b"half")
        storage = self.open()
        self.assertEqual(state(storage), before)
        self.assertEqual(self.files(".snap") + self.files(".tmp"), [])

    def test_damagedSnapshotFileRefused(self):
        storage = self.open()
        storage.append([entry(i, 2) for i in range(1, 6)])
        storage.createSnapshot(4, None, b"important")
        storage.close()
        path = os.path.join(self.directory, diskstorage.snapshotName(2, 4))
        with open(path, "r+b") as f:
            f.seek(-2, os.SEEK_END)
            f.write(b"??")
        self.assertRaises(CorruptLogError, DiskStorage, self.directory)
        os.unlink(path)
        self.assertRaises(CorruptLogError, DiskStorage, self.directory)

    def test_corruptRecordInTheMiddleRefused(self):
        """A flipped byte before the last record: the node refuses to start."""
        storage = self.open(segmentSize=1 << 20)
        for i in range(1, 11):
            storage.append([entry(i, 1, b"payload%d" % i)])
        storage.close()
        path = os.path.join(self.directory, wal.segmentName(0))
        with open(path, "rb") as f:
            data = f.read()
        records = wal.scanRecords(data).records
        lastStart = records[-1][2]
        for position in range(0, lastStart, 7):
            damaged = bytearray(data)
            damaged[position] ^= 0x10
            with open(path, "wb") as f:
                f.write(bytes(damaged))
            self.assertRaises(CorruptLogError, DiskStorage, self.directory)
        # The same flip in the last record: a torn tail; entry 10 is dropped.
        damaged = bytearray(data)
        damaged[lastStart + wal.HEADER_SIZE + 3] ^= 0x10
        with open(path, "wb") as f:
            f.write(bytes(damaged))
        storage = self.open()
        self.assertEqual(storage.lastIndex(), 9)

    def test_checkpointMismatchRefused(self):
        """A segment whose checkpoint disagrees with the log before it is refused."""
        storage = self.open(segmentSize=100)
        for i in range(1, 8):
            storage.append([entry(i, 1, b"x" * 30)])
        storage.close()
        path = os.path.join(self.directory, wal.segmentName(1))
        with open(path, "rb") as f:
            records = wal.scanRecords(f.read()).records
        wrong = wal.encodeCheckpoint(HardState(term=9), SnapshotMetadata(), 0, 0)
        data = wal.encodeRecord(wal.SEGMENT, (1).to_bytes(8, "little") + wrong)
        data += b"".join(wal.encodeRecord(k, p) for k, p, _, _ in records[1:])
        with open(path, "wb") as f:
            f.write(data)
        self.assertRaises(CorruptLogError, DiskStorage, self.directory)

    def test_unknownRecordKindRefused(self):
        storage = self.open()
        storage.append([entry(1, 1)])
        storage.close()
        with open(os.path.join(self.directory, wal.segmentName(0)), "ab") as f:
            f.write(wal.encodeRecord(99, b"from the future"))
        self.assertRaises(CorruptLogError, DiskStorage, self.directory)

    def test_measureFsyncAppend(self):
        median = measureFsyncAppend(self.mktemp(), 5)
        self.assertTrue(0 < median < 5, median)


class CrashTests(SynchronousTestCase):
    """
    "A crash at any byte leaves a log that restarts": for a run of
    operations, every byte of the newest segment the last operation wrote
    is a crash point.  The image reopens, and shows exactly the state
    after the operations whose record was whole.
    """

    def snapshotDirectory(self, directory):
        contents = {}
        for name in os.listdir(directory):
            with open(os.path.join(directory, name), "rb") as f:
                contents[name] = f.read()
        return contents

    def test_crashAtEveryByte(self):
        directory = self.mktemp()
        storage = DiskStorage(directory, segmentSize=100)
        operations = [
            lambda s: s.append([entry(1, 1, b"a" * 10), entry(2, 1)]),
            lambda s: s.setHardState(HardState(term=1, vote=1, commit=1)),
            lambda s: s.append([entry(3, 2, b"b" * 30)]),
            lambda s: s.append([entry(2, 3), entry(3, 3, b"c")]),
            lambda s: s.createSnapshot(2, ConfState(voters=[1, 2]), b"snapdata"),
            lambda s: s.append([entry(4, 3, b"d" * 40), entry(5, 3)]),
            lambda s: s.compact(3),
            lambda s: s.setHardState(HardState(term=3, vote=2, commit=5)),
            lambda s: s.applySnapshot(Snapshot(data=b"far", metadata=SnapshotMetadata(
                index=9, term=4, conf_state=ConfState(voters=[1])))),
            lambda s: s.append([entry(10, 4, b"e" * 5)]),
        ]
        images = [self.snapshotDirectory(directory)]
        states = [state(storage)]
        for operation in operations:
            operation(storage)
            images.append(self.snapshotDirectory(directory))
            states.append(state(storage))
        storage.close()
        segmentCounts = [sum(n.endswith(".wal") for n in image) for image in images]
        self.assertTrue(max(segmentCounts) > 2, segmentCounts)
        crashes = rollovers = 0
        for k in range(1, len(images)):
            before, after = images[k - 1], images[k]
            active = max(n for n in after if n.endswith(".wal"))
            rollovers += active not in before
            start = len(before.get(active, b""))
            for cut in range(start, len(after[active])):
                # Files the operation deleted were still there at the crash.
                image = dict(before, **after)
                image[active] = after[active][:cut]
                crashed = self.writeImage(image)
                reopened = DiskStorage(crashed, segmentSize=100)
                self.assertEqual(state(reopened), states[k - 1], (k, cut))
                reopened.close()
                shutil.rmtree(crashed)
                crashes += 1
            reopened = DiskStorage(self.writeImage(after), segmentSize=100)
            self.assertEqual(state(reopened), states[k], k)
            reopened.close()
        self.assertTrue(crashes > 500, crashes)
        # Some operations started a segment: crashes inside its header were tried.
        self.assertTrue(rollovers >= 3, rollovers)

    def writeImage(self, image):
        directory = self.mktemp()
        os.makedirs(directory)
        for name, data in image.items():
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)
        return directory
