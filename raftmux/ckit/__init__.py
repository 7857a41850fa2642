"""
grafana/ckit for Twisted: cluster membership on memberlist's SWIM
(``raftmux.memberlist``) with ckit's peer states, gossiped with a Lamport
clock, and its consistent hashing of keys to peers.

* ``lamport``, ``peer``, ``messages``: ckit's clock, peer states and its
  ``0x1201``-framed gossip messages (sans-IO).
* ``chash``, ``shard``: ring, rendezvous and multi-probe hashing over
  xxHash64, and the sharders that pick owners for a key (sans-IO).
* ``core``: ckit's node logic as a memberlist delegate (sans-IO).
* ``node``: ``CkitNode``, the Twisted service; ``cluster``:
  ``ClusterGossip``, a raftmux node's gossip with its raft identity.

Run members over ckit's HTTP/2 transport with
``raftmux.memberlist.CkitTransport``.  See docs/gossip.md.
"""

from raftmux.ckit.chash import (
    KeyBuilder,
    Multiprobe,
    NotEnoughNodes,
    Rendezvous,
    Ring,
    stringKey,
)
from raftmux.ckit.cluster import ClusterGossip
from raftmux.ckit.core import CkitCore, StateTransitionError
from raftmux.ckit.lamport import LamportClock
from raftmux.ckit.messages import LocalState, MessageError, StateMessage
from raftmux.ckit.node import CkitNode, ParticipantObserver, ckitConfig
from raftmux.ckit.peer import Peer, PeerState
from raftmux.ckit.shard import Op, Sharder, multiprobe, rendezvous, ring

__all__ = [
    "CkitCore",
    "CkitNode",
    "ClusterGossip",
    "KeyBuilder",
    "LamportClock",
    "LocalState",
    "MessageError",
    "Multiprobe",
    "NotEnoughNodes",
    "Op",
    "ParticipantObserver",
    "Peer",
    "PeerState",
    "Rendezvous",
    "Ring",
    "Sharder",
    "StateMessage",
    "StateTransitionError",
    "ckitConfig",
    "multiprobe",
    "rendezvous",
    "ring",
    "stringKey",
]
