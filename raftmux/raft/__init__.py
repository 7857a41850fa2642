"""
The raft consensus core: etcd-raft's semantics and message types
(``raftmux.raftpb``) as a sans-IO state machine, with durable storage and a
driver that joins it to ``raftmux.rafthttp.Transport``.

The core's public names (see ``docs/raft.md``):

* ``RawNode(Config(id=..., storage=...))``: step/tick/propose, then
  ``hasReady``/``ready``/``advance``; ``Ready``, ``Peer`` (for ``bootstrap``);
* ``MemoryStorage``: an in-memory ``IStorage``;
* ``Raft``, ``SoftState``, ``ReadState`` and the role names;
* errors ``RaftError``, ``ProposalDropped``, ``StepLocalMsgError``,
  ``StepPeerNotFoundError``, ``ConfigError``.
"""

from raftmux.raft.config import Config, ConfigError
from raftmux.raft.core import (
    ProposalDropped,
    Raft,
    RaftError,
    SoftState,
    StateCandidate,
    StateFollower,
    StateLeader,
    StatePreCandidate,
    StepLocalMsgError,
    StepPeerNotFoundError,
)
from raftmux.raft.memorystorage import MemoryStorage
from raftmux.raft.rawnode import Peer, RawNode, Ready
from raftmux.raft.readonly import ReadOnlyLeaseBased, ReadOnlySafe, ReadState

__all__ = [
    "Config", "ConfigError", "MemoryStorage", "Peer", "ProposalDropped", "Raft",
    "RaftError", "RawNode", "ReadOnlyLeaseBased", "ReadOnlySafe", "ReadState", "Ready",
    "SoftState", "StateCandidate", "StateFollower", "StateLeader", "StatePreCandidate",
    "StepLocalMsgError", "StepPeerNotFoundError",
]
