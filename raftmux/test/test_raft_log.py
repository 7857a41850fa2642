# -*- test-case-name: raftmux.test.test_raft_log -*-
"""
``MemoryStorage``, ``Unstable`` and ``RaftLog`` (etcd's storage_test.go and
log_test.go / log_unstable_test.go scenarios).
"""

from twisted.trial.unittest import SynchronousTestCase

from raftmux.raft.errors import CompactedError, SnapshotOutOfDateError, UnavailableError
from raftmux.raft.interfaces import IStorage
from raftmux.raft.log import LogConflictError, RaftLog, Unstable
from raftmux.raft.memorystorage import MemoryStorage, limitSize
from raftmux.raftpb import ConfState, Entry, HardState, Snapshot


def E(index, term, data=b""):
    return Entry(Index=index, Term=term, Data=data)


def pairs(entries):
    return [(e.Index, e.Term) for e in entries]


def storageWith(*pairs_):
    """Storage whose dummy entry is the first pair (like etcd's ents fixture)."""
    s = MemoryStorage()
    first = pairs_[0]
    if first[0]:
        snap = Snapshot()
        snap.metadata.index, snap.metadata.term = first
        s.applySnapshot(snap)
    s.append([E(i, t) for i, t in pairs_[1:]])
    return s


class MemoryStorageTests(SynchronousTestCase):
    def setUp(self):
        self.s = storageWith((3, 3), (4, 4), (5, 5))

    def test_provides(self):
        self.assertTrue(IStorage.providedBy(self.s))

    def test_term(self):
        self.assertRaises(CompactedError, self.s.term, 2)
        self.assertEqual([self.s.term(i) for i in (3, 4, 5)], [3, 4, 5])
        self.assertRaises(UnavailableError, self.s.term, 6)

    def test_entries(self):
        s = storageWith((3, 3), (4, 4), (5, 5), (6, 6))
        self.assertRaises(CompactedError, s.entries, 2, 6)
        self.assertRaises(CompactedError, s.entries, 3, 4)
        self.assertEqual(pairs(s.entries(4, 5)), [(4, 4)])
        self.assertEqual(pairs(s.entries(4, 6)), [(4, 4), (5, 5)])
        self.assertEqual(pairs(s.entries(4, 7)), [(4, 4), (5, 5), (6, 6)])
        size = E(4, 4).ByteSize()
        self.assertEqual(pairs(s.entries(4, 7, 0)), [(4, 4)])
        self.assertEqual(pairs(s.entries(4, 7, size * 2)), [(4, 4), (5, 5)])
        self.assertEqual(pairs(s.entries(4, 7, size * 3 - 1)), [(4, 4), (5, 5)])
        self.assertEqual(pairs(s.entries(4, 7, size * 3)), [(4, 4), (5, 5), (6, 6)])
        self.assertRaises(UnavailableError, s.entries, 4, 8)

    def test_lastAndFirstIndex(self):
        self.assertEqual((self.s.firstIndex(), self.s.lastIndex()), (4, 5))
        self.s.append([E(6, 5)])
        self.assertEqual(self.s.lastIndex(), 6)
        self.s.compact(4)
        self.assertEqual(self.s.firstIndex(), 5)

    def test_compact(self):
        for i, wterm, windex, wlen, werr in [
            (2, 3, 3, 3, CompactedError), (3, 3, 3, 3, CompactedError),
            (4, 4, 4, 2, None), (5, 5, 5, 1, None),
        ]:
            s = storageWith((3, 3), (4, 4), (5, 5))
            if werr:
                self.assertRaises(werr, s.compact, i)
            else:
                s.compact(i)
            self.assertEqual((s._entries[0].Index, s._entries[0].Term, len(s._entries)),
                             (windex, wterm, wlen))
        self.assertRaises(UnavailableError, storageWith((3, 3), (4, 4)).compact, 9)

    def test_createSnapshot(self):
        cs = ConfState(voters=[1, 2, 3])
        s = storageWith((3, 3), (4, 4), (5, 5))
        snap = s.createSnapshot(4, cs, b"data")
        self.assertEqual((snap.metadata.index, snap.metadata.term, snap.data,
                          list(snap.metadata.conf_state.voters)), (4, 4, b"data", [1, 2, 3]))
        self.assertEqual(s.snapshot().metadata.index, 4)
        self.assertRaises(SnapshotOutOfDateError, s.createSnapshot, 4, cs, b"")
        self.assertRaises(UnavailableError, s.createSnapshot, 9, cs, b"")

    def test_append(self):
        cases = [
            ([(3, 3), (4, 4), (5, 5)], [(3, 3), (4, 4), (5, 5)]),
            ([(3, 3), (4, 6), (5, 6)], [(3, 3), (4, 6), (5, 6)]),
            ([(3, 3), (4, 4), (5, 5), (6, 5)], [(3, 3), (4, 4), (5, 5), (6, 5)]),
            # truncate incoming entries, truncate the existing entries and append
            ([(2, 3), (3, 3), (4, 5)], [(3, 3), (4, 5)]),
            # truncate the existing entries and append
            ([(4, 5)], [(3, 3), (4, 5)]),
            # direct append
            ([(6, 5)], [(3, 3), (4, 4), (5, 5), (6, 5)]),
            # all compacted already: nothing changes
            ([(1, 1), (2, 2)], [(3, 3), (4, 4), (5, 5)]),
        ]
        for new, want in cases:
            s = storageWith((3, 3), (4, 4), (5, 5))
            s.append([E(i, t) for i, t in new])
            self.assertEqual(pairs(s._entries), want, new)
        s = storageWith((3, 3), (4, 4), (5, 5))
        self.assertRaises(UnavailableError, s.append, [E(7, 5)])

    def test_applySnapshot(self):
        s = MemoryStorage()
        snap = Snapshot()
        snap.metadata.index, snap.metadata.term = 4, 4
        snap.metadata.conf_state.voters.extend([1, 2])
        s.applySnapshot(snap)
        self.assertEqual((s.firstIndex(), s.lastIndex(), s.term(4)), (5, 4, 4))
        hs, cs = s.initialState()
        self.assertEqual(list(cs.voters), [1, 2])
        old = Snapshot()
        old.metadata.index, old.metadata.term = 3, 3
        self.assertRaises(SnapshotOutOfDateError, s.applySnapshot, old)

    def test_hardStateIsCopied(self):
        s = MemoryStorage()
        hs = HardState(term=1, vote=2, commit=0)
        s.setHardState(hs)
        hs.term = 9
        self.assertEqual(s.initialState()[0].term, 1)

    def test_limitSize(self):
        ents = [E(i, i) for i in (4, 5, 6)]
        size = ents[0].ByteSize()
        self.assertEqual(len(limitSize(ents, None)), 3)
        self.assertEqual(len(limitSize(ents, 0)), 1)
        self.assertEqual(len(limitSize(ents, size * 2)), 2)
        self.assertEqual(len(limitSize(ents, size * 2 + size // 2)), 2)
        self.assertEqual(len(limitSize(ents, size * 3)), 3)


class UnstableTests(SynchronousTestCase):
    def _u(self, entries=(), offset=0, snap=None):
        u = Unstable(offset)
        u.entries = [E(i, t) for i, t in entries]
        u.snapshot = snap
        return u

    def _snap(self, index, term):
        s = Snapshot()
        s.metadata.index, s.metadata.term = index, term
        return s

    def test_maybeFirstAndLastIndex(self):
        self.assertEqual(self._u([(5, 1)], 5).maybeFirstIndex(), None)
        self.assertEqual(self._u([(5, 1)], 5, self._snap(4, 1)).maybeFirstIndex(), 5)
        self.assertEqual(self._u([], 5, self._snap(4, 1)).maybeFirstIndex(), 5)
        self.assertEqual(self._u([(5, 1)], 5).maybeLastIndex(), 5)
        self.assertEqual(self._u([], 5, self._snap(4, 1)).maybeLastIndex(), 4)
        self.assertEqual(self._u([], 0).maybeLastIndex(), None)

    def test_maybeTerm(self):
        u = self._u([(5, 1)], 5, self._snap(4, 1))
        self.assertEqual([u.maybeTerm(i) for i in (3, 4, 5, 6)], [None, 1, 1, None])
        self.assertEqual(self._u([], 0).maybeTerm(5), None)

    def test_stableTo(self):
        cases = [
            ([], 0, None, 5, 1, 0, 0),
            ([(5, 1)], 5, None, 5, 1, 6, 0),
            ([(5, 1), (6, 1)], 5, None, 5, 1, 6, 1),
            ([(6, 2)], 6, None, 6, 1, 6, 1),    # stable to the old term
            ([(5, 1)], 5, None, 4, 1, 5, 1),    # stable to an old entry
            ([(5, 1)], 5, None, 4, 2, 5, 1),
            ([(5, 1)], 5, (4, 1), 5, 1, 6, 0),  # with snapshot
            ([(5, 1), (6, 1)], 5, (4, 1), 5, 1, 6, 1),
            ([(6, 2)], 6, (5, 1), 6, 1, 6, 1),
            ([(5, 1)], 5, (4, 1), 4, 1, 5, 1),
            ([(5, 2)], 5, (4, 2), 4, 1, 5, 1),
        ]
        for ents, offset, snap, index, term, woffset, wlen in cases:
            u = self._u(ents, offset, self._snap(*snap) if snap else None)
            u.stableTo(index, term)
            self.assertEqual((u.offset, len(u.entries)), (woffset, wlen), (ents, index, term))

    def test_truncateAndAppend(self):
        cases = [
            ([(5, 1)], 5, [(6, 1), (7, 1)], 5, [(5, 1), (6, 1), (7, 1)]),
            ([(5, 1)], 5, [(5, 2), (6, 2)], 5, [(5, 2), (6, 2)]),
            ([(5, 1)], 5, [(4, 2), (5, 2), (6, 2)], 4, [(4, 2), (5, 2), (6, 2)]),
            ([(5, 1), (6, 1), (7, 1)], 5, [(6, 2)], 5, [(5, 1), (6, 2)]),
            ([(5, 1), (6, 1), (7, 1)], 5, [(7, 2), (8, 2)], 5, [(5, 1), (6, 1), (7, 2), (8, 2)]),
        ]
        for ents, offset, toAppend, woffset, want in cases:
            u = self._u(ents, offset)
            u.truncateAndAppend([E(i, t) for i, t in toAppend])
            self.assertEqual((u.offset, pairs(u.entries)), (woffset, want))

    def test_restore(self):
        u = self._u([(5, 1)], 5, self._snap(4, 1))
        s = self._snap(6, 2)
        u.restore(s)
        self.assertEqual((u.offset, u.entries, u.snapshot), (7, [], s))
        u.stableSnapTo(5)
        self.assertIs(u.snapshot, s)
        u.stableSnapTo(6)
        self.assertIsNone(u.snapshot)


class RaftLogTests(SynchronousTestCase):
    def _log(self, *terms):
        s = MemoryStorage()
        s.append([E(i + 1, t) for i, t in enumerate(terms)])
        return RaftLog(s), s

    def test_findConflict(self):
        lg, _ = self._log(1, 2, 3)
        cases = [
            ([], 0),
            ([(1, 1), (2, 2), (3, 3)], 0), ([(2, 2), (3, 3)], 0), ([(3, 3)], 0),
            ([(1, 1), (2, 2), (3, 3), (4, 4), (5, 4)], 4), ([(4, 4), (5, 4)], 4),
            ([(1, 4), (2, 4)], 1), ([(2, 1), (3, 4), (4, 4)], 2),
            ([(3, 1), (4, 2), (5, 4), (6, 4)], 3),
        ]
        for ents, w in cases:
            self.assertEqual(lg.findConflict([E(i, t) for i, t in ents]), w, ents)

    def test_isUpToDate(self):
        lg, _ = self._log(1, 2, 3)
        last = lg.lastIndex()
        cases = [
            (last - 1, 4, True), (last, 4, True), (last + 1, 4, True),
            (last - 1, 2, False), (last, 2, False), (last + 1, 2, False),
            (last - 1, 3, False), (last, 3, True), (last + 1, 3, True),
        ]
        for index, term, w in cases:
            self.assertEqual(lg.isUpToDate(index, term), w, (index, term))

    def test_append(self):
        cases = [
            ([], 2, [(1, 1), (2, 2)], 3),
            ([(3, 2)], 3, [(1, 1), (2, 2), (3, 2)], 3),
            ([(1, 2)], 1, [(1, 2)], 1),
            ([(2, 3), (3, 3)], 3, [(1, 1), (2, 3), (3, 3)], 2),
        ]
        for ents, windex, want, wunstable in cases:
            lg, _ = self._log(1, 2)
            self.assertEqual(lg.append([E(i, t) for i, t in ents]), windex)
            self.assertEqual(pairs(lg.entries(1)), want)
            self.assertEqual(lg.unstable.offset, wunstable)

    def test_maybeAppend(self):
        lastIndex, lastTerm, commit = 3, 3, 1
        cases = [
            # (logTerm, index, committed, ents) -> (lastNew or None, wcommit, wpanic)
            (lastTerm - 1, lastIndex, lastIndex, [(lastIndex + 1, 4)], None, commit, False),
            (lastTerm, lastIndex + 1, lastIndex, [(lastIndex + 2, 4)], None, commit, False),
            (lastTerm, lastIndex, lastIndex, [], lastIndex, lastIndex, False),
            (lastTerm, lastIndex, lastIndex + 1, [], lastIndex, lastIndex, False),
            (lastTerm, lastIndex, lastIndex - 1, [], lastIndex, lastIndex - 1, False),
            (lastTerm, lastIndex, 0, [], lastIndex, commit, False),
            (0, 0, lastIndex, [], 0, commit, False),
            (lastTerm, lastIndex, lastIndex, [(lastIndex + 1, 4)], lastIndex + 1, lastIndex, False),
            (lastTerm, lastIndex, lastIndex + 1, [(lastIndex + 1, 4)], lastIndex + 1,
             lastIndex + 1, False),
            (lastTerm, lastIndex, lastIndex + 2, [(lastIndex + 1, 4)], lastIndex + 1,
             lastIndex + 1, False),
            (lastTerm, lastIndex, lastIndex + 2, [(lastIndex + 1, 4), (lastIndex + 2, 4)],
             lastIndex + 2, lastIndex + 2, False),
            (lastTerm - 1, lastIndex - 1, lastIndex, [(lastIndex, 4)], lastIndex, lastIndex, False),
            (lastTerm - 2, lastIndex - 2, lastIndex, [(lastIndex - 1, 4)], lastIndex - 1,
             lastIndex - 1, False),
            (lastTerm - 3, lastIndex - 3, lastIndex, [(lastIndex - 2, 4)], None, commit, True),
            (lastTerm - 2, lastIndex - 2, lastIndex, [(lastIndex - 1, 4), (lastIndex, 4)],
             lastIndex, lastIndex, False),
        ]
        for logTerm, index, committed, ents, wlast, wcommit, wpanic in cases:
            lg, _ = self._log(1, 2, 3)
            lg.committed = commit
            newEnts = [E(i, t) for i, t in ents]
            if wpanic:
                self.assertRaises(LogConflictError, lg.maybeAppend, index, logTerm, committed,
                                  newEnts)
                continue
            got = lg.maybeAppend(index, logTerm, committed, newEnts)
            self.assertEqual((got, lg.committed), (wlast, wcommit), (logTerm, index, ents))
            if got is not None and newEnts:
                self.assertEqual(pairs(lg.slice(lg.lastIndex() - len(newEnts) + 1,
                                               lg.lastIndex() + 1)), ents)

    def test_compactionSideEffects(self):
        """The log reads through storage compaction and unstable entries alike."""
        lastIndex, unstableIndex = 1000, 750
        s = MemoryStorage()
        s.append([E(i, i) for i in range(1, unstableIndex + 1)])
        lg = RaftLog(s)
        lg.append([E(i, i) for i in range(unstableIndex + 1, lastIndex + 1)])
        self.assertTrue(lg.maybeCommit(lastIndex, lastIndex))
        lg.appliedTo(lg.committed)
        s.compact(500)
        self.assertEqual(lg.lastIndex(), lastIndex)
        for j in range(501, lastIndex + 1):
            self.assertEqual(lg.term(j), j)
            self.assertTrue(lg.matchTerm(j, j))
        self.assertEqual(len(lg.unstableEntries()), 250)
        self.assertEqual(lg.unstableEntries()[0].Index, 751)
        prev = lg.lastIndex()
        lg.append([E(lg.lastIndex() + 1, lg.lastIndex() + 1)])
        self.assertEqual(lg.lastIndex(), prev + 1)
        self.assertEqual(len(lg.entries(lg.lastIndex())), 1)

    def test_nextEntsAndHasNextEnts(self):
        snap = Snapshot()
        snap.metadata.index, snap.metadata.term = 3, 1
        for applied, want in [(0, [4, 5]), (3, [4, 5]), (4, [5]), (5, [])]:
            s = MemoryStorage()
            s.applySnapshot(snap)
            lg = RaftLog(s)
            lg.append([E(4, 1), E(5, 1), E(6, 1)])
            lg.maybeCommit(5, 1)
            lg.appliedTo(applied)
            self.assertEqual([e.Index for e in lg.nextEnts()], want, applied)
            self.assertEqual(lg.hasNextEnts(), bool(want))

    def test_unstableEntsAndStableTo(self):
        for unstable, wents in [(3, []), (1, [(1, 1), (2, 2)])]:
            s = MemoryStorage()
            s.append([E(1, 1), E(2, 2)][:unstable - 1])
            lg = RaftLog(s)
            lg.append([E(1, 1), E(2, 2)][unstable - 1:])
            self.assertEqual(pairs(lg.unstableEntries()), wents)
            if wents:
                lg.stableTo(wents[-1][0], wents[-1][1])
            self.assertEqual(lg.unstable.offset, 3)

    def test_commitTo(self):
        lg, _ = self._log(1, 2, 3)
        lg.committed = 2
        lg.commitTo(1)
        self.assertEqual(lg.committed, 2)
        lg.commitTo(3)
        self.assertEqual(lg.committed, 3)
        self.assertRaises(LogConflictError, lg.commitTo, 4)

    def test_term(self):
        offset, num = 100, 100
        snap = Snapshot()
        snap.metadata.index, snap.metadata.term = offset, 1
        s = MemoryStorage()
        s.applySnapshot(snap)
        lg = RaftLog(s)
        lg.append([E(offset + i, i) for i in range(1, num)])
        for index, w in [(offset - 1, 0), (offset, 1), (offset + num // 2, num // 2),
                         (offset + num - 1, num - 1), (offset + num, 0)]:
            self.assertEqual(lg.term(index), w, index)

    def test_slice(self):
        offset, num = 100, 100
        last, half = offset + num, offset + num // 2
        snap = Snapshot()
        snap.metadata.index = offset
        s = MemoryStorage()
        s.applySnapshot(snap)
        s.append([E(offset + i, offset + i) for i in range(1, num // 2)])
        lg = RaftLog(s)
        lg.append([E(i, i) for i in range(half, last)])
        self.assertRaises(CompactedError, lg.slice, offset - 1, offset + 1)
        self.assertRaises(CompactedError, lg.slice, offset, offset + 1)
        self.assertEqual(pairs(lg.slice(half - 1, half + 1)), [(half - 1, half - 1), (half, half)])
        self.assertEqual(pairs(lg.slice(half, half + 1)), [(half, half)])
        self.assertEqual(pairs(lg.slice(last - 1, last)), [(last - 1, last - 1)])
        self.assertRaises(UnavailableError, lg.slice, last, last + 1)
        halfSize = E(half, half).ByteSize()
        self.assertEqual(len(lg.slice(half - 1, half + 1, 0)), 1)
        self.assertEqual(len(lg.slice(half - 2, half + 1, halfSize * 2)), 2)
        self.assertEqual(len(lg.slice(half - 1, half + 2, halfSize * 3)), 3)

    def test_restore(self):
        s = MemoryStorage()
        snap = Snapshot()
        snap.metadata.index, snap.metadata.term = 1000, 1000
        s.applySnapshot(snap)
        lg = RaftLog(s)
        self.assertEqual(lg.allEntries(), [])
        self.assertEqual((lg.firstIndex(), lg.committed, lg.unstable.offset, lg.term(1000)),
                         (1001, 1000, 1001, 1000))
