"""
The raftmux node: one member of a replicated key/value store, every
protocol on one port (``docs/node.md``).

* ``RaftNode(NodeConfig(...))``: the node as an ``IService``;
* ``NodeConfig``: etcd's flags, defaults and IDs; ``ConfigError``;
* ``KVStateMachine``: the replicated state, with snapshots;
* ``exitOnStartFailure()``: the ``onStartFailure`` hook that ends the
  process with status 1 (for ``.tac`` files and composed services);
* ``PeerDialer``: muxado sessions between raftmux nodes, plain rafthttp
  toward etcd members.
"""

from raftmux.node.config import ConfigError, NodeConfig
from raftmux.node.dialer import PeerDialer
from raftmux.node.failure import exitOnStartFailure
from raftmux.node.kv import KVStateMachine
from raftmux.node.service import NodeStartError, RaftNode

__all__ = ["ConfigError", "KVStateMachine", "NodeConfig", "NodeStartError", "PeerDialer",
           "RaftNode", "exitOnStartFailure"]
