# -*- test-case-name: raftmux.test.test_etcdpb -*-
"""
etcd v3.4's client API messages (``etcdserverpb``, ``mvccpb``, ``authpb``)
and its raft log payload (``InternalRaftRequest``), compiled into the
package from etcd's own ``.proto`` files (see ``regenerate.py``).

All of these are proto3 except ``etcdserver.proto`` (the v2 ``Request``,
proto2 with gogoproto's ``nullable=false``, kept only so that
``InternalRaftRequest`` decodes whole).  For proto3 messages gogoproto and
Python write the same bytes: fields in number order, zero scalars
omitted, a set ``oneof`` member written even at zero.  So
``SerializeToString`` is etcd's encoding and ``FromString`` parses it.

``SERVICES`` maps each service's full name to its descriptor and
``METHODS`` maps each gRPC path (``/etcdserverpb.KV/Range``) to its
L{raftmux.grpcpb.Method}; ``ROUTES`` are the JSON gateway's
``(method, path, service, rpc)``.
"""

from raftmux import grpcpb
from raftmux.etcdpb import (
    auth_pb2,
    etcdserver_pb2,
    kv_pb2,
    raft_internal_pb2,
    rpc_pb2,
)
from raftmux.etcdpb.gateway import ROUTES

__all__ = [
    "auth_pb2", "etcdserver_pb2", "kv_pb2", "raft_internal_pb2", "rpc_pb2",
    "SERVICES", "METHODS", "ROUTES",
]

_MODULES = (auth_pb2, etcdserver_pb2, kv_pb2, raft_internal_pb2, rpc_pb2)

#: etcdserverpb.KV, Watch, Lease, Cluster, Maintenance, Auth by full name.
SERVICES = {s.full_name: s for s in rpc_pb2.DESCRIPTOR.services_by_name.values()}

#: gRPC path -> Method, for every etcd service.
METHODS = {
    m.path: m
    for service in SERVICES.values()
    for m in grpcpb.methods(service, _MODULES)
}
