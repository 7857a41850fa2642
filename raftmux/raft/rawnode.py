# -*- test-case-name: raftmux.test.test_raft_rawnode -*-
"""
``RawNode``: the driver's handle on a ``Raft`` (etcd's ``rawnode.go``).

The driver loop, with no threads:

1. feed it: ``tick()`` every tick, ``step(m)`` for every message received,
   ``propose(data)`` and friends for local requests;
2. ``if node.hasReady(): rd = node.ready()``, then, in this order:
   persist ``rd.hardState``, ``rd.entries`` and ``rd.snapshot`` (fsync when
   ``rd.mustSync``); send ``rd.messages``; apply ``rd.snapshot`` and
   ``rd.committedEntries`` (calling ``applyConfChange`` for conf-change
   entries); serve ``rd.readStates`` once applied up to their index;
3. ``advance(rd)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from raftmux.raft.config import Config
from raftmux.raft.core import (
    NONE,
    Raft,
    StepLocalMsgError,
    StepPeerNotFoundError,
    isEmptyHardState,
    isEmptySnap,
)
from raftmux.raftpb import (
    ConfChange,
    ConfChangeAddNode,
    ConfChangeV2,
    ConfState,
    Entry,
    EntryConfChange,
    EntryConfChangeV2,
    HardState,
    Message,
    MsgAppResp,
    MsgBeat,
    MsgCheckQuorum,
    MsgHeartbeatResp,
    MsgHup,
    MsgPreVoteResp,
    MsgProp,
    MsgReadIndex,
    MsgSnapStatus,
    MsgTransferLeader,
    MsgUnreachable,
    MsgVoteResp,
    encode,
)

_localTypes = frozenset([MsgHup, MsgBeat, MsgUnreachable, MsgSnapStatus, MsgCheckQuorum])
_termlessTypes = frozenset([MsgProp, MsgReadIndex])
_responseTypes = frozenset([MsgAppResp, MsgVoteResp, MsgHeartbeatResp, MsgUnreachable,
                            MsgPreVoteResp])


class Peer:
    """A member of the initial configuration for ``bootstrap``."""

    def __init__(self, id: int, context: bytes = b"") -> None:
        self.id = id
        self.context = context


class Ready:
    """
    What the driver must do now.  ``softState``/``hardState`` are ``None``
    when unchanged; ``snapshot`` is ``None`` when there is none to install.
    """

    __slots__ = ("softState", "hardState", "readStates", "entries", "snapshot",
                 "committedEntries", "messages", "mustSync")

    def __init__(self, raft, prevSoftState, prevHardState):
        raftLog = raft.raftLog
        self.entries = raftLog.unstableEntries()
        self.committedEntries = raftLog.nextEnts()
        self.messages = raft.msgs
        soft = raft.softState()
        self.softState = None if soft == prevSoftState else soft
        hard = raft.hardState()
        self.hardState = None if _sameHardState(hard, prevHardState) else hard
        snap = raftLog.unstable.snapshot
        self.snapshot = snap if not isEmptySnap(snap) else None
        self.readStates = raft.readStates
        # Entries, a new term or a new vote must reach the disk before any
        # message leaves; a commit index alone need not.
        self.mustSync = bool(self.entries) or (
            self.hardState is not None and (
                hard.term != prevHardState.term or hard.vote != prevHardState.vote))

    def containsUpdates(self) -> bool:
        return bool(self.softState is not None or self.hardState is not None
                    or self.snapshot is not None or self.entries
                    or self.committedEntries or self.messages or self.readStates)

    def appliedCursor(self) -> int:
        """The index the application will have applied after this Ready."""
        if self.committedEntries:
            return self.committedEntries[-1].Index
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return 0


def _sameHardState(a, b):
    return a.term == b.term and a.vote == b.vote and a.commit == b.commit


class RawNode:
    """A ``Raft`` with etcd's RawNode API: feed it, take Ready, advance."""

    def __init__(self, config: Config) -> None:
        self.raft = Raft(config)
        self.prevSoftState = self.raft.softState()
        self.prevHardState = self.raft.hardState()

    def bootstrap(self, peers: Sequence[Peer]) -> None:
        """
        Start a new cluster of ``peers`` on empty storage, as etcd's
        ``StartNode`` does: term 1 and one committed ConfChange(AddNode)
        entry per peer, in the order given (etcd sorts them by id).  The
        entries come out in the next Ready to be persisted and applied.
        """
        if not peers:
            raise ValueError("must provide at least one peer to bootstrap")
        if self.raft.raftLog.storage.lastIndex() != 0:
            raise ValueError("can't bootstrap a nonempty Storage")
        self.prevHardState = HardState()
        raft = self.raft
        raft.becomeFollower(1, NONE)
        ents = []
        for i, peer in enumerate(peers):
            cc = ConfChange(type=ConfChangeAddNode, node_id=peer.id)
            if peer.context:
                cc.context = peer.context
            ents.append(Entry(Type=EntryConfChange, Term=1, Index=i + 1, Data=encode(cc)))
        raft.raftLog.append(ents)
        raft.raftLog.committed = len(ents)
        for peer in peers:
            raft.applyConfChange(ConfChange(type=ConfChangeAddNode, node_id=peer.id))

    # -- input --------------------------------------------------------------

    def tick(self) -> None:
        self.raft.tick()

    def tickQuiesced(self) -> None:
        """Advance the election clock only (no heartbeats, no elections)."""
        self.raft.electionElapsed += 1

    def setCampaignAllowed(self, allowed: bool) -> None:
        """
        May this member start an election when its election timeout
        passes?  True by default.  False keeps it a follower that still
        grants votes (a raftmux member beside etcd members must not lead
        them: its owner says so once it learns a peer's kind).
        """
        self.raft.campaignAllowed = bool(allowed)

    def campaign(self) -> None:
        self.raft.step(Message(type=MsgHup))

    def propose(self, data: bytes) -> None:
        """Propose ``data``; raises ``ProposalDropped`` if it cannot be."""
        m = Message(**{"type": MsgProp, "from": self.raft.id})
        m.entries.add(Data=data)
        self.raft.step(m)

    def proposeConfChange(self, cc: Any) -> None:
        """Propose a ``ConfChange`` (one at a time; later ones become no-ops)."""
        entryType = EntryConfChangeV2 if isinstance(cc, ConfChangeV2) else EntryConfChange
        m = Message(**{"type": MsgProp, "from": self.raft.id})
        m.entries.add(Type=entryType, Data=encode(cc))
        self.raft.step(m)

    def applyConfChange(self, cc: Any) -> ConfState:
        """Apply a committed conf change; returns the new ``ConfState``."""
        return self.raft.applyConfChange(cc)

    def step(self, m: Message) -> None:
        """
        Step a message received from a peer.  Local message types raise
        ``StepLocalMsgError``; responses from unknown members raise
        ``StepPeerNotFoundError``, as in etcd.  Messages with term 0 other
        than MsgProp and MsgReadIndex are dropped (no correct peer sends
        them).
        """
        if m.type in _localTypes:
            raise StepLocalMsgError(m.type)
        if m.type in _responseTypes and getattr(m, "from") not in self.raft.prs:
            raise StepPeerNotFoundError(getattr(m, "from"))
        if m.term == 0 and m.type not in _termlessTypes:
            # Term 0 marks a local message; from a peer only proposals and
            # read requests carry it.  Stepping, say, a term-0 MsgApp would
            # move a candidate back to term 0.
            return
        self.raft.step(m)

    def readIndex(self, rctx: bytes) -> None:
        """Ask for a linearizable read; ``rctx`` comes back in a ReadState."""
        m = Message(type=MsgReadIndex)
        m.entries.add(Data=rctx)
        self.raft.step(m)

    def transferLeader(self, transferee: int) -> None:
        self.raft.step(Message(**{"type": MsgTransferLeader, "from": transferee}))

    def reportUnreachable(self, id: int) -> None:
        self.raft.step(Message(**{"type": MsgUnreachable, "from": id}))

    def reportSnapshot(self, id: int, failed: bool = False) -> None:
        self.raft.step(Message(**{"type": MsgSnapStatus, "from": id, "reject": failed}))

    # -- output -------------------------------------------------------------

    def hasReady(self) -> bool:
        raft = self.raft
        if raft.softState() != self.prevSoftState:
            return True
        hard = raft.hardState()
        if not isEmptyHardState(hard) and not _sameHardState(hard, self.prevHardState):
            return True
        raftLog = raft.raftLog
        if raftLog.unstable.snapshot is not None and not isEmptySnap(raftLog.unstable.snapshot):
            return True
        return bool(raft.msgs or raftLog.unstable.entries or raftLog.hasNextEnts()
                    or raft.readStates)

    def ready(self) -> Ready:
        rd = Ready(self.raft, self.prevSoftState, self.prevHardState)
        if rd.softState is not None:
            self.prevSoftState = rd.softState
        self.raft.msgs = []
        self.raft.readStates = []
        return rd

    def appliedTo(self, index: int) -> None:
        """
        The application is applying the committed entry ``index`` (raft's
        part of it, a configuration change, is done).  ``advance`` says the
        same for a whole Ready; saying it entry by entry lets what the
        application's callbacks propose at once be judged on what is
        applied: a configuration change proposed as the previous one
        completes is otherwise taken for a second pending change and
        dropped.
        """
        log = self.raft.raftLog
        if log.applied < index <= log.committed:
            log.appliedTo(index)

    def advance(self, rd: Ready) -> None:
        """Everything in ``rd`` was persisted, sent and applied."""
        raft = self.raft
        if rd.hardState is not None:
            self.prevHardState = rd.hardState
        applied = rd.appliedCursor()
        if applied > raft.raftLog.applied:
            raft.raftLog.appliedTo(applied)
        if rd.entries:
            last = rd.entries[-1]
            raft.raftLog.stableTo(last.Index, last.Term)
        if rd.snapshot is not None:
            raft.raftLog.stableSnapTo(rd.snapshot.metadata.index)

    # -- inspection ---------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A plain dict: id, hard and soft state, applied, and progress when leading."""
        raft = self.raft
        st = {"id": raft.id, "hardState": raft.hardState(), "softState": raft.softState(),
              "applied": raft.raftLog.applied, "leadTransferee": raft.leadTransferee}
        if raft.state == "StateLeader":
            st["progress"] = {id: (pr.match, pr.next, pr.state)
                              for id, pr in raft.prs.progress.items()}
        return st
