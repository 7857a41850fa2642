# -*- test-case-name: raftmux.test.test_etcd_services -*-
"""
etcd's v3 API on one member: the six services built over an L{IEtcdNode},
as one Twisted service that starts and stops with the node.

A transport binding (gRPC, the JSON gateway) finds a service object by
its full name in ``services`` and calls the rpc method named as in
``raftmux.etcdpb.METHODS``, in one of three shapes decided by the
method's streaming flags:

* unary: ``service.Range(request)`` -> Deferred of the response, failing
  with an L{raftmux.mvcc.errors.EtcdError} (its ``code`` and
  ``message`` are the gRPC status);
* server streaming (Snapshot): ``service.Snapshot(request, responder)``
  -> an L{IStreamHandler}; responses go to the responder, which
  ``finish()``es the rpc;
* client or bidirectional streaming (Watch, LeaseKeepAlive):
  ``service.Watch(responder)`` -> an L{IStreamHandler} the binding
  feeds requests to.

L{EtcdAPI.call} does the dispatch for a binding that has a method path.
"""

from twisted.application.service import Service

from raftmux.etcd.auth import AuthService
from raftmux.etcd.cluster import ClusterService
from raftmux.etcd.gateway import GatewayResource
from raftmux.etcd.guard import Guard, refuse
from raftmux.etcd.header import Headers
from raftmux.etcd.idgen import IDGenerator
from raftmux.etcd.kv import KVService
from raftmux.etcd.lease import LeaseService
from raftmux.etcd.leasehttp import LeaseResource
from raftmux.etcd.lessor import ELECTION_TIMEOUT, Lessor
from raftmux.etcd.maintenance import MaintenanceService
from raftmux.etcd.proposer import DEFAULT_MAX_REQUEST_BYTES, Proposer
from raftmux.etcd.watch import DEFAULT_PROGRESS_INTERVAL, WatchHub
from raftmux.etcdpb import METHODS
from raftmux.mvcc.validate import DEFAULT_MAX_TXN_OPS

__all__ = ["EtcdAPI", "WatchService"]


class WatchService:
    """``etcdserverpb.Watch``: streams refused on a learner, else the hub's."""

    def __init__(self, hub, guard):
        self.hub = hub
        self._guard = guard

    def Watch(self, responder):
        error = self._guard.streamError()
        if error is not None:
            return refuse(responder, error)
        return self.hub.Watch(responder)


class EtcdAPI(Service):
    """
    etcd's v3 services over ``node`` (an L{IEtcdNode}), with etcd's flags:
    ``maxRequestBytes`` (--max-request-bytes), ``maxTxnOps``
    (--max-txn-ops), ``progressInterval``
    (--experimental-watch-progress-notify-interval),
    ``leaseCheckpointInterval`` (None: etcd 3.4's default, no checkpoints),
    ``electionTimeout`` (what a new leader adds to every lease).
    ``leaseForwarder`` (an L{raftmux.etcd.lessor.ILeaseForwarder}) lets a
    follower answer keep-alives and TimeToLive by asking the leader.
    ``ids``: the member's L{IDGenerator} when the node proposes requests
    of its own too (one generator per member keeps request IDs unique).
    """

    def __init__(self, node, clock, maxRequestBytes=DEFAULT_MAX_REQUEST_BYTES,
                 maxTxnOps=DEFAULT_MAX_TXN_OPS, progressInterval=DEFAULT_PROGRESS_INTERVAL,
                 leaseCheckpointInterval=None, electionTimeout=ELECTION_TIMEOUT,
                 leaseForwarder=None, watchMaxPending=None, ids=None):
        self.node = node
        self.clock = clock
        if ids is None:
            ids = IDGenerator(node.memberID, clock.seconds())
        headers = Headers(node)
        guard = Guard(node)
        self.proposer = Proposer(node, ids, maxRequestBytes)
        self.lessor = Lessor(
            node, self.proposer, clock, electionTimeout=electionTimeout,
            checkpointInterval=leaseCheckpointInterval, forwarder=leaseForwarder)
        hubOptions = {}
        if watchMaxPending is not None:
            hubOptions["maxPending"] = watchMaxPending
        self.watchHub = WatchHub(node, headers, clock, progressInterval=progressInterval,
                                 maxRequestBytes=maxRequestBytes, **hubOptions)
        self.kv = KVService(node, self.proposer, headers, guard, maxTxnOps=maxTxnOps)
        self.watch = WatchService(self.watchHub, guard)
        self.lease = LeaseService(node, self.proposer, headers, self.lessor, ids, guard)
        self.cluster = ClusterService(node, headers, guard)
        self.maintenance = MaintenanceService(node, headers, guard)
        self.auth = AuthService(node, headers, guard)
        self.services = {
            "etcdserverpb.KV": self.kv,
            "etcdserverpb.Watch": self.watch,
            "etcdserverpb.Lease": self.lease,
            "etcdserverpb.Cluster": self.cluster,
            "etcdserverpb.Maintenance": self.maintenance,
            "etcdserverpb.Auth": self.auth,
        }

    def startService(self):
        Service.startService(self)
        self.node.addObserver(self.watchHub)
        self.node.addObserver(self.lessor)
        self.lessor.start()

    def stopService(self):
        Service.stopService(self)
        self.node.removeObserver(self.watchHub)
        self.node.removeObserver(self.lessor)
        self.lessor.stop()
        self.watchHub.stop()

    def leaseResource(self):
        """
        etcd's ``/leases`` peer endpoints for this member (mount on the peer
        Site as ``leases``), so followers can ask this member when it leads.
        """
        return LeaseResource(self.lessor)

    def gatewayResource(self):
        """etcd's JSON gateway over these services (mount on the client Site)."""
        return GatewayResource(self.services, maxRequestBytes=self.proposer.maxRequestBytes)

    def handler(self, path):
        """The bound rpc method for a gRPC path (``/etcdserverpb.KV/Range``), or None."""
        method = METHODS.get(path)
        if method is None:
            return None
        service = self.services.get(method.service)
        if service is None:
            return None
        return getattr(service, method.name, None)

    def call(self, path, request=None, responder=None):
        """
        Dispatch by path and shape: a Deferred (unary) or an
        L{IStreamHandler} (streaming).  KeyError for an unknown path.
        """
        method = METHODS[path]
        f = self.handler(path)
        if f is None:
            raise KeyError(path)
        if method.clientStreaming:
            return f(responder)
        if method.serverStreaming:
            return f(request, responder)
        return f(request)
