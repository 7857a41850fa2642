# -*- test-case-name: raftmux.test.test_raft_storage_model -*-
"""
A hypothesis model test for L{raftmux.raft.diskstorage.DiskStorage}:
random runs of append / save / setHardState / createSnapshot / compact /
applySnapshot / restart, each step compared (state and error class) with a
plain in-memory model of etcd's ``MemoryStorage`` written here.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from raftmux.raft.diskstorage import DiskStorage
from raftmux.raft.errors import CompactedError, SnapshotOutOfDateError, UnavailableError
from raftmux.raftpb import ConfState, Entry, HardState, Snapshot, SnapshotMetadata, encode


class Model:
    """etcd's MemoryStorage, as plainly as possible: a list after an offset."""

    def __init__(self):
        self.offset = (0, 0)  # (index, term) of the dummy entry
        self.log = []
        self.hardState = HardState()
        self.snap = Snapshot()

    def first(self):
        return self.offset[0] + 1

    def last(self):
        return self.offset[0] + len(self.log)

    def termAt(self, index):
        if index == self.offset[0]:
            return self.offset[1]
        return self.log[index - self.first()].Term

    def append(self, entries):
        entries = [e for e in entries if e.Index >= self.first()]
        if not entries:
            return
        if entries[0].Index > self.last() + 1:
            raise UnavailableError()
        self.log = self.log[:entries[0].Index - self.first()] + entries

    def setHardState(self, hardState):
        self.hardState = hardState

    def createSnapshot(self, index, confState, data):
        if index <= self.snap.metadata.index:
            raise SnapshotOutOfDateError()
        if index > self.last():
            raise UnavailableError()
        if index < self.offset[0]:
            raise CompactedError()
        self.snap = Snapshot(metadata=SnapshotMetadata(
            index=index, term=self.termAt(index), conf_state=confState))
        if data:
            self.snap.data = data

    def compact(self, index):
        if index <= self.offset[0]:
            raise CompactedError()
        if index > self.last():
            raise UnavailableError()
        term = self.termAt(index)
        self.log = [e for e in self.log if e.Index > index]
        self.offset = (index, term)

    def applySnapshot(self, snap):
        if snap.metadata.index <= self.snap.metadata.index:
            raise SnapshotOutOfDateError()
        self.snap = snap
        self.offset = (snap.metadata.index, snap.metadata.term)
        self.log = []

    def view(self):
        return (self.first(), self.last(), self.offset[1],
                [encode(e) for e in self.log], encode(self.hardState),
                encode(self.snap.metadata.conf_state), encode(self.snap))


def view(storage):
    first, last = storage.firstIndex(), storage.lastIndex()
    hs, cs = storage.initialState()
    entries = storage.entries(first, last + 1) if last >= first else []
    return (first, last, storage.term(first - 1), [encode(e) for e in entries],
            encode(hs), encode(cs), encode(storage.snapshot()))


operations = st.one_of(
    st.tuples(st.just("append"), st.integers(-3, 3), st.integers(0, 4),
              st.integers(1, 5), st.binary(max_size=30)),
    st.tuples(st.just("save"), st.integers(-3, 2), st.integers(0, 3),
              st.integers(1, 5), st.integers(0, 40)),
    st.tuples(st.just("hardState"), st.integers(0, 9), st.integers(0, 3),
              st.integers(0, 40)),
    st.tuples(st.just("createSnapshot"), st.integers(-3, 2), st.binary(max_size=20)),
    st.tuples(st.just("compact"), st.integers(-3, 2)),
    st.tuples(st.just("applySnapshot"), st.integers(-2, 6), st.integers(0, 9)),
    st.tuples(st.just("restart")),
)


class ModelTests(SynchronousTestCase):
    """DiskStorage behaves as the model at every step, across restarts."""

    def entries(self, start, count, term, data):
        return [Entry(Index=start + k, Term=term, Data=data) for k in range(count)]

    def step(self, storage, model, operation):
        """Apply ``operation`` to both; they must fail alike or not at all."""
        name = operation[0]
        if name == "append":
            _, shift, count, term, data = operation
            entries = self.entries(max(1, model.last() + shift), count, term, data)
            calls = [(s.append, (entries,)) for s in (storage, model)]
        elif name == "save":
            _, shift, count, term, commit = operation
            entries = self.entries(max(1, model.last() + shift), count, term, b"s")
            hs = HardState(term=term, vote=1, commit=commit)
            calls = [(storage.save, (hs, entries)),
                     (lambda h, e: (model.append(e), model.setHardState(h)), (hs, entries))]
        elif name == "hardState":
            hs = HardState(term=operation[1], vote=operation[2], commit=operation[3])
            calls = [(s.setHardState, (hs,)) for s in (storage, model)]
        elif name == "createSnapshot":
            index = model.last() + operation[1]
            cs = ConfState(voters=[1, index % 4 + 2])
            calls = [(s.createSnapshot, (index, cs, operation[2])) for s in (storage, model)]
        elif name == "compact":
            index = model.last() + operation[1]
            calls = [(s.compact, (index,)) for s in (storage, model)]
        elif name == "applySnapshot":
            index = max(0, model.snap.metadata.index + operation[1])
            snap = Snapshot(data=b"applied", metadata=SnapshotMetadata(
                index=index, term=operation[2], conf_state=ConfState(learners=[7])))
            calls = [(s.applySnapshot, (snap,)) for s in (storage, model)]
        outcomes = []
        for function, args in calls:
            try:
                function(*args)
            except (CompactedError, UnavailableError, SnapshotOutOfDateError) as e:
                outcomes.append(type(e))
            else:
                outcomes.append(None)
        self.assertEqual(outcomes[0], outcomes[1], operation)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(operations, max_size=40), st.sampled_from([60, 150, 1 << 20]),
           st.booleans())
    def test_model(self, run, segmentSize, fsync):
        directory = self.mktemp()
        storage = DiskStorage(directory, segmentSize=segmentSize, fsync=fsync)
        model = Model()
        try:
            for operation in run:
                if operation[0] == "restart":
                    storage.close()
                    storage = DiskStorage(directory, segmentSize=segmentSize, fsync=fsync)
                else:
                    self.step(storage, model, operation)
                self.assertEqual(view(storage), model.view(), operation)
            storage.close()
            storage = DiskStorage(directory, segmentSize=segmentSize)
            self.assertEqual(view(storage), model.view())
        finally:
            storage.close()
