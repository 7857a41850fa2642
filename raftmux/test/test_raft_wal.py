# -*- test-case-name: raftmux.test.test_raft_wal -*-
"""
Tests for L{raftmux.raft.wal}: the record codec's recovery rules (a cut at
any byte is a torn tail, damage before the tail is corruption) and the
segment files (rollover, repair on open, removal).
"""

import os
import shutil
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.raft import wal
from raftmux.raft.errors import CorruptLogError
from raftmux.raftpb import Entry, HardState, SnapshotMetadata, encode


def sampleRecords(count=6):
    """Records of several kinds and sizes, the empty payload included."""
    return [(wal.ENTRIES if k % 2 else wal.HARDSTATE, bytes([65 + k]) * (k * 5))
            for k in range(count)]


def frame(records):
    """The log bytes of ``records`` and the end offset of each."""
    data = b""
    ends = []
    for kind, payload in records:
        data += wal.encodeRecord(kind, payload)
        ends.append(len(data))
    return data, ends


def plain(scan):
    return [(kind, payload) for kind, payload, _, _ in scan.records]


class RecordCodecTests(SynchronousTestCase):
    """The sans-IO codec: framing and the torn-tail/corruption rule."""

    def test_roundTrip(self):
        records = sampleRecords()
        data, ends = frame(records)
        scan = wal.scanRecords(data)
        self.assertEqual(plain(scan), records)
        self.assertEqual((scan.validLength, scan.torn), (len(data), False))
        self.assertEqual([end for _, _, _, end in scan.records], ends)

    def test_headerLayout(self):
        """13 bytes: header CRC, length, kind, payload CRC; both CRCs checked."""
        record = wal.encodeRecord(wal.HARDSTATE, b"abc")
        self.assertEqual(wal.HEADER_SIZE, 13)
        self.assertEqual(len(record), 16)
        self.assertEqual(struct.unpack_from("<IB", record, 4), (3, wal.HARDSTATE))
        self.assertEqual(record[13:], b"abc")

    def test_everyCutIsATornTail(self):
        """A log cut at any byte scans as exactly the records before the cut."""
        records = sampleRecords()
        data, ends = frame(records)
        for cut in range(len(data) + 1):
            scan = wal.scanRecords(data[:cut])
            whole = sum(1 for end in ends if end <= cut)
            self.assertEqual(plain(scan), records[:whole], cut)
            self.assertEqual(scan.validLength, ends[whole - 1] if whole else 0)
            self.assertEqual(scan.torn, cut != scan.validLength)

    def test_cutInOlderSegmentIsCorrupt(self):
        """Only the newest segment may be torn: older ones were synced whole."""
        data, ends = frame(sampleRecords())
        for cut in (1, ends[2] + 3, len(data) - 1):
            self.assertRaises(CorruptLogError, wal.scanRecords, data[:cut], last=False)
        self.assertEqual(len(wal.scanRecords(data[:ends[2]], last=False).records), 3)

    def test_flipBeforeLastRecordIsCorrupt(self):
        """Every single flipped byte in any record but the last one stops the scan."""
        records = sampleRecords()
        data, ends = frame(records)
        for position in range(ends[-2]):
            damaged = bytearray(data)
            damaged[position] ^= 0x40
            self.assertRaises(CorruptLogError, wal.scanRecords, bytes(damaged))

    def test_flipInLastRecordIsTorn(self):
        """
        A flipped byte anywhere in the last record (no intact record after
        it): a torn write, dropped.
        """
        records = sampleRecords()
        data, ends = frame(records)
        for position in range(ends[-2], len(data)):
            damaged = bytearray(data)
            damaged[position] ^= 0x01
            scan = wal.scanRecords(bytes(damaged))
            self.assertEqual(plain(scan), records[:-1], position)
            self.assertEqual((scan.validLength, scan.torn), (ends[-2], True))

    def test_zeroTailIsTorn(self):
        """A crash that extended the file with zeros: torn, not corrupt."""
        records = sampleRecords()
        data, ends = frame(records)
        for zeros in (1, wal.HEADER_SIZE, 4096):
            scan = wal.scanRecords(data + bytes(zeros))
            self.assertEqual(plain(scan), records)
            self.assertEqual((scan.validLength, scan.torn), (len(data), True))
        # Zeros over the start of the last record's sector: still torn.
        scan = wal.scanRecords(data[:ends[-2]] + bytes(len(data) - ends[-2]))
        self.assertEqual(plain(scan), records[:-1])

    def test_garbageThenIntactRecordIsCorrupt(self):
        """Damage followed by an intact record is a hole, not a tail."""
        data, _ = frame(sampleRecords(2))
        tail = wal.encodeRecord(wal.HARDSTATE, b"later")
        self.assertRaises(CorruptLogError, wal.scanRecords, data + b"\xff" * 7 + tail)
        self.assertRaises(CorruptLogError, wal.scanRecords, data + bytes(20) + tail)

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(sorted(wal.KINDS)),
                              st.binary(max_size=40)), min_size=1, max_size=6),
           st.data())
    def test_randomCut(self, records, data):
        """Hypothesis: random records, random cut: the whole records before it."""
        log, ends = frame(records)
        cut = data.draw(st.integers(0, len(log)))
        scan = wal.scanRecords(log[:cut])
        self.assertEqual(plain(scan), records[:sum(1 for end in ends if end <= cut)])

    def test_oversizedRecordRefused(self):
        self.patch(wal, "MAX_RECORD_SIZE", 10)
        self.assertRaises(ValueError, wal.encodeRecord, wal.ENTRIES, b"x" * 11)


class PayloadCodecTests(SynchronousTestCase):
    """The payloads round-trip with etcd's bytes; damage is CorruptLogError."""

    def test_entries(self):
        entries = [Entry(Term=2, Index=7, Data=b"a"), Entry(Term=2, Index=8)]
        encoded = [encode(e) for e in entries]
        decoded = wal.decodeEntries(wal.encodeEntries(encoded))
        self.assertEqual([data for _, data in decoded], encoded)
        self.assertEqual([encode(e) for e, _ in decoded], encoded)
        self.assertEqual(wal.decodeEntries(wal.encodeEntries([])), [])

    def test_checkpoint(self):
        hs = HardState(term=3, vote=2, commit=9)
        meta = SnapshotMetadata(index=5, term=2)
        payload = wal.encodeCheckpoint(hs, meta, 6, 2)
        got = wal.decodeCheckpoint(payload)
        self.assertEqual((encode(got[0]), encode(got[1]), got[2], got[3]),
                         (encode(hs), encode(meta), 6, 2))
        self.assertRaises(CorruptLogError, wal.decodeCheckpoint, payload[:-1])

    def test_damagedPayloads(self):
        self.assertRaises(CorruptLogError, wal.decodeEntries, b"\x05\x00\x00\x00ab")
        self.assertRaises(CorruptLogError, wal.decodeEntries, b"\x01\x00")
        self.assertRaises(CorruptLogError, wal.decodeEntries,
                          wal.encodeEntries([b"\xff\xff\xff"]))
        self.assertRaises(CorruptLogError, wal.decodeIndexTerm, b"\x00" * 15)


class SegmentedLogTests(SynchronousTestCase):
    """Segment files: rollover, repair on open, removal, failure."""

    def setUp(self):
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.checkpoints = 0

    def checkpoint(self):
        self.checkpoints += 1
        return b"cp%d" % (self.checkpoints,)

    def openLog(self, directory=None, segmentSize=1 << 20):
        log = wal.SegmentedLog(directory or self.directory, self.checkpoint, segmentSize)
        self.addCleanup(log.close)
        return log, log.open()

    def contents(self, segments):
        return [record for segment in segments for record in segment.records]

    def test_emptyDirectory(self):
        log, segments = self.openLog()
        self.assertEqual((segments, log.segments()), ([], []))
        self.assertEqual(os.listdir(self.directory), [])

    def test_writeAndReopen(self):
        log, _ = self.openLog()
        records = sampleRecords()
        for record in records:
            self.assertEqual(log.write([record]), 0)
        log.close()
        _, segments = self.openLog()
        self.assertEqual([s.seq for s in segments], [0])
        self.assertEqual(segments[0].checkpoint, b"cp1")
        self.assertEqual(self.contents(segments), records)

    def test_rolloverAtSize(self):
        """A new segment, with a fresh checkpoint, once one holds segmentSize bytes."""
        log, _ = self.openLog(segmentSize=100)
        seqs = [log.write([(wal.ENTRIES, b"x" * 40)]) for _ in range(6)]
        # header (13 + 8 + 3) + 53 = 77 < 100; + 53 = 130 >= 100: roll.
        self.assertEqual(seqs, [0, 0, 1, 1, 2, 2])
        self.assertEqual(sorted(os.listdir(self.directory)),
                         [wal.segmentName(n) for n in range(3)])
        log.close()
        _, segments = self.openLog(segmentSize=100)
        self.assertEqual([s.checkpoint for s in segments], [b"cp1", b"cp2", b"cp3"])
        self.assertEqual([len(s.records) for s in segments], [2, 2, 2])

    def test_everyCutOfLastSegmentReopens(self):
        """
        A crash at any byte of the newest segment: the log opens, holds the
        records written whole before the cut, is repaired on disk, and
        takes new records after them.
        """
        log, _ = self.openLog(segmentSize=70)
        records = [(wal.ENTRIES, bytes([k]) * (7 + k)) for k in range(8)]
        for record in records:
            log.write([record])
        log.close()
        seqs = sorted(os.listdir(self.directory))
        self.assertTrue(len(seqs) >= 3)
        lastPath = os.path.join(self.directory, seqs[-1])
        with open(lastPath, "rb") as f:
            lastData = f.read()
        earlier = []
        for name in seqs[:-1]:
            with open(os.path.join(self.directory, name), "rb") as f:
                scan = wal.scanRecords(f.read())
            earlier += plain(scan)[1:]
        lastScan = wal.scanRecords(lastData)
        ends = [end for _, _, _, end in lastScan.records]
        for cut in range(len(lastData) + 1):
            copy = self.mktemp()
            shutil.copytree(self.directory, copy)
            with open(os.path.join(copy, seqs[-1]), "r+b") as f:
                f.truncate(cut)
            log, segments = self.openLog(copy)
            whole = sum(1 for end in ends if end <= cut)
            expected = earlier + plain(lastScan)[1:whole]
            self.assertEqual(self.contents(segments), expected, cut)
            if whole == 0:
                # The newest segment's own header was cut: it is removed.
                self.assertEqual(len(segments), len(seqs) - 1)
                self.assertNotIn(seqs[-1], os.listdir(copy))
            else:
                self.assertEqual(os.path.getsize(os.path.join(copy, seqs[-1])),
                                 ends[whole - 1])
            log.write([(wal.HARDSTATE, b"after")])
            log.close()
            log, segments = self.openLog(copy)
            self.assertEqual(self.contents(segments), expected + [(wal.HARDSTATE, b"after")])
            log.close()
            shutil.rmtree(copy)

    def test_corruptOlderSegmentRefused(self):
        log, _ = self.openLog(segmentSize=60)
        for _ in range(4):
            log.write([(wal.ENTRIES, b"y" * 40)])
        log.close()
        path = os.path.join(self.directory, wal.segmentName(0))
        with open(path, "r+b") as f:
            f.seek(-3, os.SEEK_END)
            f.write(b"zzz")
        log = wal.SegmentedLog(self.directory, self.checkpoint, 60)
        self.assertRaises(CorruptLogError, log.open)

    def test_missingMiddleSegmentRefused(self):
        log, _ = self.openLog(segmentSize=60)
        for _ in range(4):
            log.write([(wal.ENTRIES, b"y" * 40)])
        log.close()
        os.unlink(os.path.join(self.directory, wal.segmentName(1)))
        log = wal.SegmentedLog(self.directory, self.checkpoint, 60)
        self.assertRaises(CorruptLogError, log.open)

    def test_emptyOlderSegmentRefused(self):
        log, _ = self.openLog(segmentSize=60)
        for _ in range(3):
            log.write([(wal.ENTRIES, b"y" * 40)])
        log.close()
        open(os.path.join(self.directory, wal.segmentName(1)), "wb").close()
        log = wal.SegmentedLog(self.directory, self.checkpoint, 60)
        self.assertRaises(CorruptLogError, log.open)

    def test_renamedSegmentRefused(self):
        """A segment's header names its number; a misplaced file is caught."""
        log, _ = self.openLog()
        log.write([(wal.ENTRIES, b"y")])
        log.close()
        os.rename(os.path.join(self.directory, wal.segmentName(0)),
                  os.path.join(self.directory, wal.segmentName(4)))
        log = wal.SegmentedLog(self.directory, self.checkpoint)
        self.assertRaises(CorruptLogError, log.open)

    def test_removeBefore(self):
        """Whole old segments go, oldest first; the newest always stays."""
        log, _ = self.openLog(segmentSize=60)
        for _ in range(5):
            log.write([(wal.ENTRIES, b"y" * 40)])
        self.assertEqual(log.segments(), [0, 1, 2, 3, 4])
        self.assertEqual(log.removeBefore(2), [0, 1])
        self.assertEqual(log.removeBefore(99), [2, 3])
        self.assertEqual(log.segments(), [4])
        self.assertEqual(os.listdir(self.directory), [wal.segmentName(4)])
        log.close()
        _, segments = self.openLog(segmentSize=60)
        self.assertEqual([s.seq for s in segments], [4])

    def test_failedWriteRefusesMore(self):
        """After an fsync error the log's state is unknown: no more writes."""
        log, _ = self.openLog()
        log.write([(wal.ENTRIES, b"y")])

        def failing(fd):
            raise OSError(5, "EIO")
        self.patch(wal, "_datasync", failing)
        self.assertRaises(OSError, log.write, [(wal.ENTRIES, b"z")])
        self.patch(wal, "_datasync", os.fsync)
        self.assertRaises(OSError, log.write, [(wal.ENTRIES, b"w")])
        self.assertRaises(OSError, log.sync)

    def test_unsyncedWritesThenSync(self):
        """sync=False defers the fdatasync to sync(); sync() without writes is free."""
        calls = []
        self.patch(wal, "_datasync", lambda fd: calls.append(fd))
        log, _ = self.openLog()
        log.write([(wal.ENTRIES, b"a")], sync=False)
        log.write([(wal.ENTRIES, b"b")], sync=False)
        self.assertEqual(len(calls), 0)
        log.sync()
        log.sync()
        self.assertEqual(len(calls), 1)
        log.write([(wal.ENTRIES, b"c")])
        self.assertEqual(len(calls), 2)
