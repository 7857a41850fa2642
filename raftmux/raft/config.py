# -*- test-case-name: raftmux.test.test_raft_core -*-
"""The settings of one raft member (etcd's ``raft.Config``)."""

from __future__ import annotations

import random as _random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from raftmux.raft.logger import asRaftLogger
from raftmux.raft.readonly import ReadOnlyLeaseBased, ReadOnlySafe

if TYPE_CHECKING:
    from raftmux.raft.interfaces import IStorage


class ConfigError(ValueError):
    """A ``Config`` that cannot work."""


class Config:
    """
    ``id`` (non-zero) and ``storage`` are required.  Ticks are whatever unit
    the driver calls ``tick()`` with; etcd uses 100 ms, electionTick 10.

    ``maxSizePerMsg`` (bytes, ``None`` = unlimited; 0 = one entry per
    MsgApp) caps each append; ``maxInflightMsgs`` caps appends in flight
    per follower.  ``maxCommittedSizePerReady`` caps the committed entries
    of one Ready (defaults to ``maxSizePerMsg``, as in etcd 3.4).

    ``random`` is anything with ``randrange(n)`` (a ``random.Random``):
    pass a seeded one for deterministic elections.

    ``logger``: where the core's few log lines go (``None``, the default,
    drops them; an object with ``debug``/``info``/``warn``/``error``, or a
    callable ``(level, message)``: see ``raftmux.raft.logger``).  The core
    imports no logging system.

    Whether this member may campaign is not configuration but an input
    that can change at any time: ``RawNode.setCampaignAllowed``.

    ``peers``/``learners`` are for tests only, as in etcd: the initial
    configuration when the storage holds none.
    """

    def __init__(self, id: int, storage: IStorage, electionTick: int = 10,
                 heartbeatTick: int = 1, applied: int = 0,
                 maxSizePerMsg: int | None = 1024 * 1024, maxInflightMsgs: int = 256,
                 maxCommittedSizePerReady: int | None = None, checkQuorum: bool = False,
                 preVote: bool = False, readOnlyOption: str = ReadOnlySafe,
                 disableProposalForwarding: bool = False, random: Any = None,
                 peers: Iterable[int] = (), learners: Iterable[int] = (),
                 logger: Any = None) -> None:
        self.id = id
        self.storage = storage
        self.electionTick = electionTick
        self.heartbeatTick = heartbeatTick
        self.applied = applied
        self.maxSizePerMsg = maxSizePerMsg
        self.maxInflightMsgs = maxInflightMsgs
        self.maxCommittedSizePerReady = maxCommittedSizePerReady
        self.checkQuorum = checkQuorum
        self.preVote = preVote
        self.readOnlyOption = readOnlyOption
        self.disableProposalForwarding = disableProposalForwarding
        self.random = random if random is not None else _random.Random()
        self.peers = tuple(peers)
        self.learners = tuple(learners)
        try:
            self.logger = asRaftLogger(logger)
        except TypeError as e:
            raise ConfigError(str(e)) from None

    def validate(self) -> None:
        if not self.id:
            raise ConfigError("cannot use none as id")
        if self.heartbeatTick <= 0:
            raise ConfigError("heartbeat tick must be greater than 0")
        if self.electionTick <= self.heartbeatTick:
            raise ConfigError("election tick must be greater than heartbeat tick")
        if self.storage is None:
            raise ConfigError("storage cannot be nil")
        if self.maxInflightMsgs <= 0:
            raise ConfigError("max inflight messages must be greater than 0")
        if self.readOnlyOption not in (ReadOnlySafe, ReadOnlyLeaseBased):
            raise ConfigError("unknown read-only option %r" % (self.readOnlyOption,))
        if self.readOnlyOption == ReadOnlyLeaseBased and not self.checkQuorum:
            raise ConfigError("CheckQuorum must be enabled when ReadOnlyOption is ReadOnlyLeaseBased")
        if self.maxCommittedSizePerReady is None:
            self.maxCommittedSizePerReady = self.maxSizePerMsg
