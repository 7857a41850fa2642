"""
SWIM cluster membership compatible with hashicorp/memberlist (0.2.2): a Go
memberlist node and a ``raftmux.memberlist.Memberlist`` are peers.

* ``messages``, ``stream``, ``lzw``: the wire format (packets, streams,
  compression, CRC), no I/O.
* ``queue``, ``suspicion``, ``core``: the protocol as a sans-IO state
  machine (``MemberlistCore``: inputs with the time, outputs as values).
* ``service``, ``transport``: the Twisted shell (``Memberlist``, an
  ``IService``) and memberlist's own UDP+TCP transport.
* ``ckittransport``: ``CkitTransport``, memberlist over ckit's HTTP/2
  gossip transport (``raftmux.gossip``).

See docs/gossip.md.
"""

from raftmux.memberlist.ckittransport import CkitTransport
from raftmux.memberlist.config import MemberlistConfig
from raftmux.memberlist.core import MemberlistCore, Node
from raftmux.memberlist.delegate import IDelegate, IEventDelegate
from raftmux.memberlist.messages import NodeStateType
from raftmux.memberlist.queue import (
    IBroadcast,
    INamedBroadcast,
    IUniqueBroadcast,
    NamedBroadcast,
    SimpleBroadcast,
    TransmitLimitedQueue,
)
from raftmux.memberlist.service import JoinError, Memberlist, create
from raftmux.memberlist.transport import IMemberlistTransport, IPacketReceiver, UDPTCPTransport

__all__ = [
    "CkitTransport",
    "IBroadcast",
    "IDelegate",
    "IEventDelegate",
    "IMemberlistTransport",
    "INamedBroadcast",
    "IPacketReceiver",
    "IUniqueBroadcast",
    "JoinError",
    "Memberlist",
    "MemberlistConfig",
    "MemberlistCore",
    "NamedBroadcast",
    "Node",
    "NodeStateType",
    "SimpleBroadcast",
    "TransmitLimitedQueue",
    "UDPTCPTransport",
    "create",
]
