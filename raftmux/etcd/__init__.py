# -*- test-case-name: raftmux.test.test_etcd_services -*-
"""
etcd 3.4's v3 API on a raftmux member, independent of the transport:
the KV, Watch, Lease, Cluster, Maintenance and Auth services as Python
objects over a narrow node interface (L{IEtcdNode}), and etcd's JSON
gateway as a twisted.web resource.  A gRPC binding calls the same
service objects (see L{raftmux.etcd.api}).
"""

from raftmux.etcd.api import EtcdAPI
from raftmux.etcd.interfaces import (
    SERVER_VERSION,
    IApplyObserver,
    IEtcdNode,
    IResponder,
    IStreamHandler,
    NodeStatus,
)

__all__ = [
    "EtcdAPI", "IEtcdNode", "IApplyObserver", "IResponder", "IStreamHandler",
    "NodeStatus", "SERVER_VERSION",
]
