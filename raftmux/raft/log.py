# -*- test-case-name: raftmux.test.test_raft_log -*-
"""
The raft log as the core sees it: stable entries in ``IStorage`` followed by
entries not yet persisted (``Unstable``), with the commit and applied marks.
etcd's ``raftLog`` and ``unstable``.
"""

from raftmux.raft.errors import CompactedError, UnavailableError
from raftmux.raft.memorystorage import limitSize


class LogConflictError(Exception):
    """
    A change that would rewrite committed entries or leave a hole in the
    log.  etcd panics here; the core refuses the message that asked for it.
    """


class Unstable:
    """
    Entries and at most one snapshot that the driver has not persisted yet.
    ``entries[i]`` has index ``offset + i``.
    """

    def __init__(self, offset):
        self.snapshot = None
        self.entries = []
        self.offset = offset

    def maybeFirstIndex(self):
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybeLastIndex(self):
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybeTerm(self, index):
        if index < self.offset:
            if self.snapshot is not None and self.snapshot.metadata.index == index:
                return self.snapshot.metadata.term
            return None
        last = self.maybeLastIndex()
        if last is None or index > last:
            return None
        return self.entries[index - self.offset].Term

    def stableTo(self, index, term):
        """Entries up to ``index`` (if still of ``term``) are persisted."""
        t = self.maybeTerm(index)
        if t is None:
            return
        if t == term and index >= self.offset:
            del self.entries[:index + 1 - self.offset]
            self.offset = index + 1

    def stableSnapTo(self, index):
        if self.snapshot is not None and self.snapshot.metadata.index == index:
            self.snapshot = None

    def restore(self, snapshot):
        self.offset = snapshot.metadata.index + 1
        self.entries = []
        self.snapshot = snapshot

    def truncateAndAppend(self, entries):
        after = entries[0].Index
        if after == self.offset + len(self.entries):
            self.entries.extend(entries)
        elif after <= self.offset:
            # Replaces everything unstable; storage's tail gets replaced
            # when these are persisted.
            self.offset = after
            self.entries = list(entries)
        else:
            self.entries = self.entries[:after - self.offset] + list(entries)

    def slice(self, lo, hi):
        return self.entries[lo - self.offset:hi - self.offset]


class RaftLog:
    """etcd's ``raftLog``: one view over storage and the unstable part."""

    def __init__(self, storage, maxNextEntsSize=None):
        self.storage = storage
        first = storage.firstIndex()
        last = storage.lastIndex()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1
        self.maxNextEntsSize = maxNextEntsSize

    def __repr__(self):
        return "<RaftLog committed=%d applied=%d unstable.offset=%d len(unstable)=%d>" % (
            self.committed, self.applied, self.unstable.offset, len(self.unstable.entries))

    # -- appending ----------------------------------------------------------

    def maybeAppend(self, index, logTerm, committed, entries):
        """
        The follower's half of MsgApp: if our entry at ``index`` has
        ``logTerm``, append ``entries`` past the first conflict and advance
        the commit.  Returns the last index the message covers, or ``None``
        if the terms did not match.
        """
        if not self.matchTerm(index, logTerm):
            return None
        lastNew = index + len(entries)
        if entries and entries[0].Term and entries[0].Index > self.lastIndex():
            # All new (the usual case): no terms to compare.
            conflict = entries[0].Index
        else:
            conflict = self.findConflict(entries)
        if conflict:
            if conflict <= self.committed:
                raise LogConflictError(
                    "entry %d conflicts with committed entry (committed %d)"
                    % (conflict, self.committed))
            self.append(entries[conflict - (index + 1):])
        self.commitTo(min(committed, lastNew))
        return lastNew

    def append(self, entries):
        if not entries:
            return self.lastIndex()
        after = entries[0].Index - 1
        if after < self.committed:
            raise LogConflictError("append after %d is below committed %d"
                                   % (after, self.committed))
        if after > self.lastIndex():
            raise LogConflictError("append after %d leaves a gap (last %d)"
                                   % (after, self.lastIndex()))
        self.unstable.truncateAndAppend(entries)
        return self.lastIndex()

    def findConflict(self, entries):
        """
        Index of the first entry whose term differs from ours, or of the
        first new entry if all that overlap match; 0 if nothing is new.
        """
        for e in entries:
            if not self.matchTerm(e.Index, e.Term):
                return e.Index
        return 0

    # -- reading ------------------------------------------------------------

    def unstableEntries(self):
        return list(self.unstable.entries)

    def nextEnts(self):
        """Committed entries not yet applied (limited by maxNextEntsSize)."""
        off = max(self.applied + 1, self.firstIndex())
        if self.committed + 1 > off:
            return self.slice(off, self.committed + 1, self.maxNextEntsSize)
        return []

    def hasNextEnts(self):
        return self.committed + 1 > max(self.applied + 1, self.firstIndex())

    def hasPendingSnapshot(self):
        return self.unstable.snapshot is not None

    def snapshot(self):
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def firstIndex(self):
        i = self.unstable.maybeFirstIndex()
        if i is not None:
            return i
        return self.storage.firstIndex()

    def lastIndex(self):
        u = self.unstable
        if u.entries:
            return u.offset + len(u.entries) - 1
        if u.snapshot is not None:
            return u.snapshot.metadata.index
        return self.storage.lastIndex()

    def lastTerm(self):
        return self.zeroTermOnError(self.lastIndex())

    def term(self, index):
        """
        Term of ``index``: 0 outside ``[firstIndex-1, lastIndex]``;
        ``CompactedError``/``UnavailableError`` from storage otherwise.
        """
        u = self.unstable
        if u.entries and u.offset <= index < u.offset + len(u.entries):
            # The hot case (a follower's tail): answer without storage.
            return u.entries[index - u.offset].Term
        dummy = self.firstIndex() - 1
        if index < dummy or index > self.lastIndex():
            return 0
        t = self.unstable.maybeTerm(index)
        if t is not None:
            return t
        return self.storage.term(index)

    def zeroTermOnError(self, index):
        try:
            return self.term(index)
        except (CompactedError, UnavailableError):
            return 0

    def matchTerm(self, index, term):
        try:
            return self.term(index) == term
        except (CompactedError, UnavailableError):
            return False

    def isUpToDate(self, lastIndex, term):
        """Is a log ending at (lastIndex, term) at least as new as ours?"""
        ourTerm = self.lastTerm()
        return term > ourTerm or (term == ourTerm and lastIndex >= self.lastIndex())

    def entries(self, index, maxSize=None):
        last = self.lastIndex()
        if index > last:
            return []
        return self.slice(index, last + 1, maxSize)

    def allEntries(self):
        return self.entries(self.firstIndex())

    def slice(self, lo, hi, maxSize=None):
        """Entries ``[lo, hi)``; raises ``CompactedError`` below firstIndex."""
        if lo > hi:
            raise ValueError("invalid slice %d > %d" % (lo, hi))
        first = self.firstIndex()
        if lo < first:
            raise CompactedError(lo)
        if hi > self.lastIndex() + 1:
            raise UnavailableError("slice [%d,%d) out of bound [%d,%d]"
                                   % (lo, hi, first, self.lastIndex()))
        if lo == hi:
            return []
        ents = []
        offset = self.unstable.offset
        if lo < offset:
            stored = self.storage.entries(lo, min(hi, offset), maxSize)
            if len(stored) < min(hi, offset) - lo:
                return stored
            ents = list(stored)
        if hi > offset:
            ents.extend(self.unstable.slice(max(lo, offset), hi))
        return limitSize(ents, maxSize)

    # -- marks --------------------------------------------------------------

    def commitTo(self, toCommit):
        if self.committed < toCommit:
            if self.lastIndex() < toCommit:
                raise LogConflictError("commit %d is past the last index %d"
                                       % (toCommit, self.lastIndex()))
            self.committed = toCommit

    def appliedTo(self, index):
        if not index:
            return
        if self.committed < index or index < self.applied:
            raise ValueError("applied %d is out of range [%d, %d]"
                             % (index, self.applied, self.committed))
        self.applied = index

    def stableTo(self, index, term):
        self.unstable.stableTo(index, term)

    def stableSnapTo(self, index):
        self.unstable.stableSnapTo(index)

    def maybeCommit(self, maxIndex, term):
        """Commit up to ``maxIndex`` if that entry is of ``term``."""
        if maxIndex > self.committed and self.zeroTermOnError(maxIndex) == term:
            self.commitTo(maxIndex)
            return True
        return False

    def restore(self, snapshot):
        self.committed = snapshot.metadata.index
        self.unstable.restore(snapshot)
