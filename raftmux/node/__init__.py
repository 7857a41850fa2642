"""
The raftmux node: one member of an etcd-compatible cluster, every
protocol on one port (``docs/node.md``).

* ``RaftNode(NodeConfig(...))``: the node as an ``IService``;
* ``NodeConfig``: etcd's flags, defaults and IDs; ``ConfigError``;
* ``EtcdNode``: the node as etcd's v3 API sees it (``IEtcdNode``);
* ``NodeState``: the replicated state (etcd's MVCC key space and the
  member table), with snapshots;
* ``exitOnStartFailure()``: the ``onStartFailure`` hook that ends the
  process with status 1 (for ``.tac`` files and composed services);
* ``PeerDialer``: muxado sessions between raftmux nodes, plain rafthttp
  toward etcd members.
* ``KVStateMachine``: the state of raftmux before the MVCC key space, kept
  so older data directories replay into the key space.
"""

from raftmux.node.config import ConfigError, NodeConfig
from raftmux.node.dialer import PeerDialer
from raftmux.node.etcdnode import EtcdNode
from raftmux.node.failure import exitOnStartFailure
from raftmux.node.kv import KVStateMachine
from raftmux.node.service import NodeStartError, RaftNode
from raftmux.node.state import NodeState

__all__ = ["ConfigError", "EtcdNode", "KVStateMachine", "NodeConfig", "NodeStartError",
           "NodeState", "PeerDialer", "RaftNode", "exitOnStartFailure"]
