# -*- test-case-name: raftmux.test.test_node -*-
"""
``RaftNode``: one member of an etcd-compatible cluster, as an
``IService``.  It wires the parts, each built with what it needs, in
order, at start:

* consensus: ``DiskStorage`` + ``RawNode`` + ``RaftDriver``, a rafthttp
  ``Transport`` whose Agent dials peers through ``PeerDialer`` (muxado
  sessions between raftmux nodes, plain rafthttp toward etcd);
* the replicated state: ``NodeState`` (etcd's MVCC key space, the member
  table) applied by ``NodeStateMachine``, with snapshots; ``PeerSync``
  keeps the Transport's and the dialer's peers in step with the table;
* ``EtcdNode``: the one narrow view (``IEtcdNode``) the client API has of
  all that, and etcd's v3 API over it (``raftmux.etcd.EtcdAPI``, a child
  service): the JSON gateway on client URLs, ``/leases`` for peers;
* ``NodeGossip`` (``raftmux.node.gossip``): memberlist and ckit over the
  peer port, announcing the member's ID, client URLs and raft role, joined
  to the member table's peers (``GET /cluster/gossip``);
* two twisted.web Sites: the peer Site (rafthttp, ``/members``,
  ``/leases`` and the client API) and the client Site (the client API:
  ``/v3/...``, ``/kv``, ``/cluster``, ``/health``, ``/metrics``), served
  through a ``SniffingFactory`` per kind of listening URL
  (``portFactory``; who may reach which is ``raftmux.node.listeners``).
  ``grpcFactory`` is where etcd's gRPC server goes.
"""

import math
import os
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from twisted.application import service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from zope.interface import implementer

import raftmux
from raftmux.etcd import EtcdAPI
from raftmux.etcd.idgen import IDGenerator
from raftmux.etcd.leasehttp import LeaseHTTPForwarder
from raftmux.grpc.etcd import EtcdGRPCRouter
from raftmux.grpc.health import HealthServicer
from raftmux.h2 import H2Config, H2ServerFactory
from raftmux.memberlist import CkitTransport
from raftmux.memberlist.messages import joinHostPort
from raftmux.metrics import MetricsResource
from raftmux.muxado import MuxadoConfig, MuxadoServerFactory
from raftmux.node import identity
from raftmux.node.api import ClusterResource, HealthResource, KVResource, NodeSite
from raftmux.node.config import addressOf
from raftmux.node.dialer import MUXADO, PLAIN, PeerDialer
from raftmux.node.etcdnode import EtcdNode
from raftmux.node.gossip import NodeGossip
from raftmux.node.join import fetchMembers
from raftmux.node.listeners import (
    CLIENT_ONLY,
    PEER_ONLY,
    SHARED,
    IdentityRouter,
    listenerKind,
    peersAreVerified,
)
from raftmux.node.members import memberContext
from raftmux.node.metrics import NodeMetrics
from raftmux.node.peers import PeerSync
from raftmux.node.promote import MembersWithPromote, PromoteForwarder
from raftmux.node.state import NodeState
from raftmux.node.statemachine import NodeStateMachine
from raftmux.raft import Config, RawNode
from raftmux.raft.diskstorage import DiskStorage
from raftmux.raft.driver import RaftDriver
from raftmux.raft.rawnode import Peer
from raftmux.rafthttp import Member, MembersResource, Transport, VersionResource, formatID
from raftmux.rafthttp.interfaces import IRaft
from raftmux.rafthttp.server import NotFound
from raftmux.sniff import SniffingFactory, http1, http2, http2HeaderField, muxado
from raftmux.tls import H2, HTTP11, MUXADO_ALPN, ClientPolicy, tlsOnlyFactory, tlsServerFactory

__all__ = ["RaftNode", "NodeStartError", "minLeaseTTL"]

# What the "listening on" line says each kind of URL serves.
_SERVES = {
    CLIENT_ONLY: "clients: gRPC, HTTP/1.1, h2c",
    PEER_ONLY: "peers: rafthttp, gossip, muxado; gRPC, HTTP/1.1, h2c",
    SHARED: "clients and peers: gRPC, HTTP/1.1, h2c; rafthttp, gossip, muxado for peers",
}


class NodeStartError(Exception):
    """The node cannot start (the message says why); nothing was served."""


def minLeaseTTL(config):
    """etcd's minimum lease TTL: ceil(1.5 x election ticks x heartbeat) seconds."""
    seconds = ((3 * config.electionTicks) // 2) * config.heartbeatInterval
    return max(1, int(math.ceil(round(seconds, 6))))


def _endpointDescription(url):
    host, port = addressOf(url)
    return "tcp:%d:interface=%s" % (port, host.replace(":", "\\:"))


class _RaftLog:
    """The raft core's logger (``Config.logger``): its lines in twisted.logger."""

    log = Logger(namespace="raftmux.raft.core")

    def debug(self, message):
        self.log.debug("{message}", message=message)

    def info(self, message):
        self.log.info("{message}", message=message)

    def warn(self, message):
        self.log.warn("{message}", message=message)

    def error(self, message):
        self.log.error("{message}", message=message)


#: muxado sessions a node accepts at once, and streams per session: members
#: dial one session per pair, each with a few streams (more only for
#: requests forwarded in flight).
MAX_PEER_SESSIONS = 64
MAX_PEER_STREAMS = 256
#: bytes a peer session may have waiting in its streams (past it the session
#: stops reading), so a flood holds at most MAX_PEER_SESSIONS x this
MAX_PEER_BUFFERED = 8 * 1024 * 1024


#: the HTTP/2 settings of the gRPC server: a Watch holds a stream for its
#: whole life; at stop, streams get this long after the GOAWAY
GRPC_CONFIG = H2Config(maxConcurrentStreams=1000, shutdownTimeout=2.0)
#: seconds between leader checks while a Health Watch waits
GRPC_HEALTH_INTERVAL = 1.0


def clientBodyLimit(config):
    """The largest request body a client route takes (the JSON gateway's base64, /kv's value)."""
    return max(config.maxValueBytes, config.maxRequestBytes * 4 // 3) + 64 * 1024


#: raft's limit on the entries of one message (etcd 3.4's maxSizePerMsg)
MAX_SIZE_PER_MSG = 1024 * 1024


def peerBodyLimit(config):
    """
    The largest body a peer route takes, by path: a snapshot any size (it
    is read to a file as it comes); a raft message up to raft's message
    size plus one request (raft always sends one entry, however large);
    a forwarded client request as on the client port.
    """
    limit = max(clientBodyLimit(config), MAX_SIZE_PER_MSG + config.maxRequestBytes + 64 * 1024)

    def limitFor(path):
        if path is not None and path.split(b"?", 1)[0].rstrip(b"/") == b"/raft/snapshot":
            return None
        return limit
    return limitFor


@implementer(IRaft)
class RaftNode(service.MultiService):
    """
    ``RaftNode(config)`` for a ``raftmux.node.NodeConfig``.

    ``listen``: open the config's listen URLs on start (tests that bind
    ports themselves pass False and serve ``portFactory(url)``).
    ``registry``: a prometheus registry (one of its own by default).
    ``whenStarted()`` fires once the node serves, or fails with
    ``NodeStartError``.  ``onStartFailure(failure)``: called once the node
    has stopped after a failed start; ``raftmux.node.exitOnStartFailure()``
    ends the process with status 1 (what ``twistd raftmux`` does; use it in
    a ``.tac``).

    The node is its Transport's ``IRaft`` (as etcd's server is); the parts
    are built in order at start: storage, dialer and Agent, Transport, the
    state and its state machine, RawNode, the driver, ``etcd`` (the
    ``EtcdNode``), ``etcdAPI`` (etcd's v3 services, a child service) and
    ``nodeGossip``; ``gossipTransport`` (a ``CkitTransport``, whose
    ``GossipTransport`` is ``gossip``) exists from construction, for the
    peer routes.
    """

    log = Logger()

    def __init__(self, config, reactor=None, registry=None, listen=True, fsync=True,
                 useMuxado=True, clientEndpoint=None, serverEndpoint=None,
                 onStartFailure=None, leaderSendsFirst=True, persistInThread=True):
        service.MultiService.__init__(self)
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self.reactor = reactor
        self.registry = registry if registry is not None else CollectorRegistry()
        self.listen = listen
        self.fsync = fsync
        self.useMuxado = useMuxado
        self.leaderSendsFirst = leaderSendsFirst
        self.persistInThread = persistInThread
        self.onStartFailure = onStartFailure
        self._clientEndpoint = clientEndpoint
        self._serverEndpoint = serverEndpoint
        self.id = config.id
        self.clusterID = config.clusterID
        self.storage = None
        self.rawNode = None
        self.driver = None
        self.transport = None
        self.dialer = None
        self.agent = None
        self.pool = None
        self.gossip = None
        self.nodeGossip = None
        self.state = None
        self.stateMachine = None
        self.etcd = None
        self.etcdAPI = None
        self.ports = []
        self.removed = False
        self._started = []
        self._startResult = None
        self._portFactories = {}
        self._tlsFactories = []
        self._muxadoServer = None
        self.metrics = NodeMetrics(self, self.registry)
        # What peers reach (rafthttp, /members and the client API they
        # forward), and what clients reach: see raftmux.node.listeners.
        self.peerSite = NodeSite(self, maxBodyBytes=peerBodyLimit(config))
        # A client's request body is refused (413) from its declared length
        # when it is larger than any client route takes: twisted.web would
        # otherwise spool it to disk whatever its size.
        self.clientSite = NodeSite(self, maxBodyBytes=clientBodyLimit(config))
        # --listen-metrics-urls: /metrics and /health only (etcd's metrics listener).
        self.metricsSite = NodeSite(self, maxBodyBytes=0)
        # etcd's gRPC API (see grpcFactory); Health's "" follows the leader.
        self.grpcHealth = HealthServicer()
        self.grpcHealth.track("", self._healthStatus, reactor, GRPC_HEALTH_INTERVAL)
        self._grpcServer = H2ServerFactory(
            EtcdGRPCRouter(lambda: self.etcdAPI, self.grpcHealth), GRPC_CONFIG, reactor)
        self.tlsPolicy = ClientPolicy(config.peerTLS) if config.usesTLS else None
        gossipTLS = None
        if self.tlsPolicy is not None and config.advertisePeerURLs[0].startswith("https:"):
            gossipTLS = lambda host: self.tlsPolicy.creatorFor(host, [H2])  # noqa: E731
        # memberlist's transport over ckit's HTTP/2 routes, mounted on the
        # peer routes now; NodeGossip runs memberlist on it once the member
        # ID is known.  ``gossip`` is its GossipTransport.
        self.gossipTransport = CkitTransport(self.reactor, joinHostPort(*self._gossipAddress()),
                                             contextFactory=gossipTLS, registry=self.registry)
        self.gossip = self.gossipTransport.gossip
        self._initialMembers = []

    # -- lifecycle --------------------------------------------------------------

    def whenStarted(self):
        if self._startResult is not None:
            if isinstance(self._startResult, Failure):
                return defer.fail(self._startResult)
            return defer.succeed(self)
        d: defer.Deferred[RaftNode] = defer.Deferred()
        self._started.append(d)
        return d

    def _startDone(self, result):
        self._startResult = result
        waiters, self._started = self._started, []
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    def startService(self):
        service.MultiService.startService(self)
        d = defer.ensureDeferred(self._start())

        def failed(f):
            self.log.critical("raftmux: member {name} cannot start: {why}",
                              name=self.config.name, why=f.getErrorMessage())
            self._teardown()
            self._startDone(f)
            if self.onStartFailure is not None:
                self.onStartFailure(f)
        d.addCallbacks(self._startDone, failed)

    async def _start(self):
        """
        Ports first: a port that cannot be had (2379 taken) ends the start
        before anything is written.  Then the data directory: its identity
        wins over the flags (one log line says so when they differ), except
        in a directory whose raft log holds nothing, which a start that
        failed before its first write left behind: that one starts afresh.
        The identity is written once every part is built, before the
        bootstrap entries (written by the first Ready).
        """
        config = self.config
        if self.listen:
            await self._listen()
        known = identity.load(config.identityFile)
        # A raft directory is created only once the start can go on (a join
        # that fails leaves none behind).
        fresh = True
        if os.path.isdir(config.raftDir):
            self._openStorage()
            fresh = self.storage.lastIndex() == 0 and not self.storage.initialState()[0].term
        if known is not None and fresh:
            self.log.warn("raftmux: {dir} holds an identity but no raft state (an earlier start "
                          "ended before its first write): starting afresh from the flags",
                          dir=config.dataDir)
            known = None
        if known is not None:
            self.id, self.clusterID = known["id"], known["clusterID"]
            initialMembers = known.get("members") or []
            self._logRestart(known)
            bootstrap = False
        else:
            if not fresh:
                raise NodeStartError("%s holds a raft log but no identity file" % (
                    config.dataDir,))
            if config.clusterState == "existing":
                initialMembers = await self._joinExisting()
            else:
                initialMembers = [{"id": config.memberIDs[n], "name": n, "peerURLs": urls}
                                  for n, urls in config.initialCluster.items()]
            bootstrap = config.clusterState == "new"
        if self.storage is None:
            self._openStorage()
        self._initialMembers = initialMembers
        self._makeParts(initialMembers, bootstrap)
        if known is None:
            identity.save(config.identityFile, self.id, self.clusterID, config.name,
                          initialMembers)
        if config.tlsWatchInterval > 0:
            for reloadable in self._reloadables():
                reloadable.watch(self.reactor, config.tlsWatchInterval)
        self.driver.start()
        self.etcdAPI.setServiceParent(self)
        self.nodeGossip.startService()
        self.reactor.callLater(0, self.etcd.publish, config.name, config.advertiseClientURLs)
        for url in config.listenURLs:
            self.log.info("raftmux: member {name} ({id}) listening on {url} ({serves})",
                          name=config.name, id=formatID(self.id), url=url,
                          serves=_SERVES[listenerKind(config, url)])
        for url in config.listenMetricsURLs:
            self.log.info("raftmux: member {name} ({id}) serving /metrics and /health on {url}",
                          name=config.name, id=formatID(self.id), url=url)
        return self

    def _openStorage(self):
        config = self.config
        try:
            self.storage = DiskStorage(config.raftDir, fsync=self.fsync,
                                       onSync=self.metrics.walFsync.observe)
        except Exception as e:
            raise NodeStartError("the raft log in %s cannot be used: %s" % (config.raftDir, e)) \
                from e

    def _logRestart(self, known):
        config = self.config
        self.log.info("raftmux: restarting member {id} of cluster {cid} from {dir}",
                      id=formatID(self.id), cid=formatID(self.clusterID), dir=config.dataDir)
        if config.clusterState == "new" and (config.id, config.clusterID) != (
                self.id, self.clusterID):
            self.log.warn(
                "raftmux: {dir} belongs to member {id} of cluster {cid}; the flags "
                "(--name, --initial-cluster, --initial-cluster-token) describe member "
                "{flagID} of cluster {flagCID}: the data directory wins, the flags are "
                "ignored (remove {dir} to start a new member)",
                dir=config.dataDir, id=formatID(self.id), cid=formatID(self.clusterID),
                flagID=formatID(config.id), flagCID=formatID(config.clusterID))

    def _makeParts(self, initialMembers, bootstrap):
        """
        Dialer and Agent, Transport, the state machine, RawNode, driver,
        ``EtcdNode`` and etcd's API: each built with what it needs.
        """
        config = self.config
        self.dialer = PeerDialer(self.reactor, self.id, streamFactory=self.peerSite,
                                 clientEndpoint=self._clientEndpoint, tlsPolicy=self.tlsPolicy,
                                 registry=self.registry, useMuxado=self.useMuxado,
                                 onKindChange=self._peerKindChanged)
        self.pool = HTTPConnectionPool(self.reactor, persistent=True)
        self.pool.maxPersistentPerHost = 8
        self.pool.retryAutomatically = False
        self.agent = Agent.usingEndpointFactory(self.reactor, self.dialer, pool=self.pool)
        verified = peersAreVerified(config)
        self.transport = Transport(
            self.id, self.clusterID, config.advertisePeerURLs, self,
            reactor=self.reactor, agent=self.agent, registry=self.registry,
            snapshotDir=os.path.join(config.dataDir, "member", "snap-db"),
            onMemberRemoved=self._removedByPeer, authenticate=lambda request: verified)
        peers = PeerSync(self.id, self.dialer, self.transport)
        self.state = NodeState(minLeaseTTL=minLeaseTTL(config))
        self.stateMachine = NodeStateMachine(
            self.state, self.storage, peers, self.id, snapshotCount=config.snapshotCount,
            catchUpEntries=config.snapshotCatchUpEntries, onRemoved=self._removedFromCluster,
            onChanged=self._updateCampaign)
        snapshotIndex = self.stateMachine.snapshotIndex
        if snapshotIndex:
            self.stateMachine.restoreAtStart(initialMembers)
        raftConfig = Config(
            id=self.id, storage=self.storage, electionTick=config.electionTicks,
            heartbeatTick=1, applied=snapshotIndex, checkQuorum=True, preVote=True,
            maxSizePerMsg=MAX_SIZE_PER_MSG, maxInflightMsgs=512, logger=_RaftLog())
        self.rawNode = RawNode(raftConfig)
        if bootstrap:
            peerList = [Peer(m["id"], memberContext(m["id"], m["peerURLs"], m["name"]))
                        for m in sorted(initialMembers, key=lambda m: m["id"])]
            self.rawNode.bootstrap(peerList)
            self.log.info("raftmux: bootstrapped cluster {cid} with {n} members",
                          cid=formatID(self.clusterID), n=len(peerList))
        elif not snapshotIndex:
            # Until the log replays (or, joining, the leader sends it), the
            # initial member list says where everyone is; the member table
            # itself changes only as the log says.
            for m in initialMembers or ():
                peers.memberChanged(Member(m["id"], m["peerURLs"], m.get("name", "")))
        self.driver = RaftDriver(
            self.rawNode, self.storage, self.transport, self.reactor,
            stateMachine=self.stateMachine, tickInterval=config.heartbeatInterval,
            requestTimeout=config.requestTimeout, leaderSendsFirst=self.leaderSendsFirst,
            persistInThread=self.persistInThread)
        ids = IDGenerator(self.id, self.reactor.seconds())
        self.etcd = EtcdNode(self.driver, self.stateMachine, self.reactor, self.id,
                             self.clusterID, requestTimeout=config.requestTimeout, ids=ids,
                             promoteForwarder=PromoteForwarder(self.agent))
        self.etcdAPI = EtcdAPI(
            self.etcd, self.reactor, maxRequestBytes=config.maxRequestBytes,
            electionTimeout=config.electionTicks *
            config.heartbeatInterval, leaseForwarder=LeaseHTTPForwarder(self.agent, self.etcd),
            ids=ids)
        self.nodeGossip = NodeGossip(
            self.reactor, self.etcd, self.gossipTransport, config.gossip, config.name,
            config.advertiseClientURLs, self._gossipAddress(), self._gossipJoinTargets)
        self.driver.addObserver(self.nodeGossip)
        self._updateCampaign()
        shared = self.resources()
        self.clientSite.mount(_ClientRoot(), shared)
        self.metricsSite.mount(_ClientRoot(), {name: shared[name]
                                               for name in (b"metrics", b"health")})
        self.peerSite.mount(self.transport.resource(), {**shared, **self.peerResources()})

    async def _joinExisting(self):
        """etcd's ``existing`` start: ask the others for the member list (spec 11.6)."""
        config = self.config
        others = [u for name, urls in config.initialCluster.items() if name != config.name
                  for u in urls]
        # A plain HTTP(S) client of its own: the member ID (which decides
        # who dials the muxado sessions) is known only from the answer.
        asker = PeerDialer(self.reactor, config.id, clientEndpoint=self._clientEndpoint,
                           tlsPolicy=self.tlsPolicy, useMuxado=False)
        mine = sorted(config.advertisePeerURLs)

        def isMe(member):
            return sorted(member["peerURLs"]) == mine
        try:
            clusterID, members = await fetchMembers(
                Agent.usingEndpointFactory(self.reactor, asker), others, reactor=self.reactor,
                timeout=config.requestTimeout, accept=lambda members: any(map(isMe, members)))
        finally:
            asker.stop()
        me = [m for m in members if isMe(m)]
        if not me:
            raise NodeStartError(
                "the cluster at %s has no member with peer URLs %s: add it first "
                "(POST /cluster/members)" % (",".join(others), ",".join(mine)))
        self.id = me[0]["id"]
        self.clusterID = clusterID
        self.log.info("raftmux: joining cluster {cid} as member {id}",
                      cid=formatID(clusterID), id=formatID(self.id))
        return [dict(m, name=m.get("name", "")) for m in members]

    async def _listen(self):
        for url in self.config.listenURLs:
            await self._listenOn(url, self.portFactory(url))
        for url in self.config.listenMetricsURLs:
            await self._listenOn(url, self.metricsFactory(url))

    async def _listenOn(self, url, factory):
        description = self._serverEndpoint(url) if self._serverEndpoint else \
            _endpointDescription(url)
        endpoint = serverFromString(self.reactor, description) \
            if isinstance(description, str) else description
        try:
            port = await endpoint.listen(factory)
        except Exception as e:
            raise NodeStartError("cannot listen on %s: %s" % (url, e)) from e
        self.ports.append(port)

    # -- what each listening URL serves (raftmux.node.listeners) -------------------

    def portFactory(self, url=None):
        """
        The factory for a listening URL, by its kind (``listenerKind``):
        client-only URLs serve the client API over HTTP/1.1 and h2c; peer
        URLs also rafthttp, gossip (h2c by content type) and muxado
        sessions.  https: a TLS-only port (plaintext is closed) whose inner
        bytes go to those routes, by ALPN where it decides (http/1.1,
        raftmux-muxado/1) and by sniffing otherwise; on a shared https URL
        a connection reaches the peer routes only with a peer certificate.
        ``url=None``: a plain shared port (tests).
        """
        config = self.config
        kind = listenerKind(config, url) if url is not None else SHARED
        info = config.tlsFor(url) if url is not None else None
        key = (kind, info.role if info is not None else None)
        factory = self._portFactories.get(key)
        if factory is None:
            factory = self._portFactories[key] = self._buildPortFactory(kind, info)
        return factory

    def metricsFactory(self, url):
        """
        What a ``--listen-metrics-urls`` URL serves: ``/metrics`` and
        ``/health`` over HTTP/1.1; https with the client certificate, as
        etcd does.
        """
        if urlsplit(url).scheme != "https":
            return self.metricsSite
        tlsFactory = tlsServerFactory(self.config.clientTLS, self.metricsSite,
                                      clock=self.reactor)
        self._tlsFactories.append(tlsFactory)
        return tlsOnlyFactory(tlsFactory, registry=self.registry, clock=self.reactor)

    def _buildPortFactory(self, kind, info):
        peer = kind != CLIENT_ONLY
        if info is None:
            return self._sniffer(peer, tls=False)
        if kind == SHARED:
            inner = IdentityRouter(self._sniffer(True, tls=True),
                                   self._sniffer(False, tls=True))
            tlsFactory = tlsServerFactory(info, inner, clock=self.reactor,
                                          optionalClientCertificates=True)
        else:
            tlsFactory = tlsServerFactory(info, self._sniffer(peer, tls=True),
                                          clock=self.reactor)
        self._tlsFactories.append(tlsFactory)
        return tlsOnlyFactory(tlsFactory, registry=self.registry, clock=self.reactor)

    def _sniffer(self, peer, tls):
        """One sniffer: the peer routes (``peer``) or the client routes."""
        name = ("node" if peer else "node-client") + ("-tls" if tls else "")
        routes = self._peerRoutes() if peer else self._clientRoutes()
        alpn = None
        if tls:
            alpn = {HTTP11: self.peerSite if peer else self.clientSite}
            if peer:
                alpn[MUXADO_ALPN] = self._muxadoFactory()
        return SniffingFactory(routes, registry=self.registry, name=name, alpn=alpn)

    def _peerRoutes(self):
        return self._grpcRoutes() + [
            (http2HeaderField(b"content-type", b"application/x.ckit"),
             self.gossip.h2Factory(), "gossip"),
            (http2(), self.peerSite, "h2c"),
            (http1(), self.peerSite, "http1"),
            (muxado(), self._muxadoFactory(), "muxado"),
        ]

    def _clientRoutes(self):
        return self._grpcRoutes() + [
            (http2(), self.clientSite, "h2c"),
            (http1(), self.clientSite, "http1"),
        ]

    # -- the gRPC hook -------------------------------------------------------------

    def grpcFactory(self):
        """
        etcd's gRPC API (``raftmux.grpc``): an ``H2ServerFactory`` whose
        router serves KV, Watch, Lease, Cluster, Maintenance and Auth over
        ``etcdAPI`` (looked up per request: the ports listen before the API
        exists, and those rpcs answer UNAVAILABLE until then) and
        ``grpc.health.v1.Health``, whose server-wide status (``""``) is
        SERVING while this member knows a leader.  Every sniffer routes h2c
        with ``content-type: application/grpc`` here (inside TLS, ALPN ``h2``
        routes no connection by itself: its bytes are sniffed the same way,
        as etcd's grpcHandlerFunc splits gRPC from HTTP/2), on client and
        peer URLs alike, as etcd 3.4 serves gRPC on both.
        """
        return self._grpcServer

    def _healthStatus(self):
        if self.leader and not self.removed:
            return HealthServicer.SERVING
        return HealthServicer.NOT_SERVING

    def _grpcRoutes(self):
        factory = self.grpcFactory()
        if factory is None:
            return []
        return [(http2HeaderField(b"content-type", b"application/grpc", valuePrefix=True,
                                  sendSettings=True), factory, "grpc")]

    def _muxadoFactory(self):
        if self._muxadoServer is None:
            # Between members a session carries a handful of streams; the
            # caps keep a flood within MAX_PEER_SESSIONS x MAX_PEER_BUFFERED.
            self._muxadoServer = MuxadoServerFactory(
                self.peerSite, MuxadoConfig(maxIncomingStreams=MAX_PEER_STREAMS,
                                            maxBufferedBytes=MAX_PEER_BUFFERED),
                registry=self.registry, maxSessions=MAX_PEER_SESSIONS)
        return self._muxadoServer

    def tlsContexts(self):
        """The ``ServerContextFactory`` of each TLS listener (what ``reloadTLS`` reloads)."""
        return [tlsFactory.contextFactory for tlsFactory in self._tlsFactories]

    def _reloadables(self):
        found = self.tlsContexts()
        if self.tlsPolicy is not None:
            found.append(self.tlsPolicy)
        return found

    def reloadTLS(self):
        """
        Re-read every certificate, key and CA file (SIGHUP, or the file
        watch): new connections use them; a bad file keeps the old ones.
        """
        for reloadable in self._reloadables():
            reloadable.reload()

    def stopService(self):
        service.MultiService.stopService(self)
        return self._teardown()

    def _teardown(self):
        for reloadable in self._reloadables():
            reloadable.stopWatching()
        waits = []
        # Gossip first: it leaves (over its own connections) while the rest stops.
        if self.nodeGossip is not None:
            waits.append(self.nodeGossip.stopService())
        else:
            waits.append(self.gossipTransport.stop())
        if self.etcd is not None:
            self.etcd.stop()
        if self.driver is not None:
            self.driver.stop()
        for port in self.ports:
            waits.append(defer.maybeDeferred(port.stopListening))
        self.ports = []
        # gRPC clients hear NOT_SERVING, then a graceful GOAWAY (streams
        # still open are cut after GRPC_CONFIG.shutdownTimeout).
        self.grpcHealth.shutdown()
        waits.append(self._grpcServer.shutdown())
        if self.transport is not None:
            waits.append(self.transport.stop())
        if self.dialer is not None:
            waits.append(self.dialer.stop())
        if self.pool is not None:
            waits.append(self.pool.closeCachedConnections())
        if self.storage is not None:
            # A Ready's write may still be running on a thread.
            storage, self.storage = self.storage, None
            idle = self.driver.idle() if self.driver is not None else defer.succeed(None)
            waits.append(idle.addBoth(lambda _: storage.close()))
        return defer.DeferredList(waits, consumeErrors=True)

    # -- IRaft: what the Transport delivers goes to the driver ---------------------

    def process(self, message):
        if self.driver is None:
            return defer.fail(NodeStartError("raft is not running yet"))
        return self.driver.process(message)

    def isIDRemoved(self, id):
        return self.driver is not None and self.driver.isIDRemoved(id)

    def reportUnreachable(self, id):
        if self.driver is not None:
            self.driver.reportUnreachable(id)

    def reportSnapshot(self, id, status):
        if self.driver is not None:
            self.driver.reportSnapshot(id, status)

    # -- state -------------------------------------------------------------------

    @property
    def leader(self):
        return self.etcd.leader() if self.etcd is not None else 0

    @property
    def isLeader(self):
        return self.etcd is not None and self.etcd.isLeader()

    @property
    def members(self):
        """The replicated member table (``raftmux.node.members.MemberTable``)."""
        return self.state.members if self.state is not None else None

    @property
    def keySpace(self):
        """The replicated key space (``raftmux.mvcc.KeySpace``)."""
        return self.state.keySpace if self.state is not None else None

    @property
    def snapshotIndex(self):
        return self.stateMachine.snapshotIndex if self.stateMachine is not None else 0

    def peerURLsOf(self, id):
        member = self.members.get(id) if self.members is not None else None
        return member.peerURLs if member is not None else []

    def campaignAllowed(self):
        """
        May this member campaign?  Not beside an etcd member: an etcd
        cluster expects an etcd leader (cluster version, its lessor), so a
        raftmux member only votes there.  A member is known to be etcd when
        its ``/version`` answered as etcd's does; and once the log shows an
        etcd leader (it set the cluster version), every other member must
        have answered as raftmux first.  Otherwise members not heard from
        yet do not block a campaign.
        """
        kinds = self.dialer.kinds
        others = [url for id in self.members.ids() if id != self.id
                  for url in self.peerURLsOf(id)]
        if any(kinds.get(addressOf(url)) == PLAIN for url in others):
            return False
        if self.state.clusterVersion is not None:
            return all(kinds.get(addressOf(url)) == MUXADO for url in others)
        return True

    def resources(self):
        """
        What clients and peers both reach: etcd's JSON gateway (``/v3``,
        ``/v3beta``), the node's ``/kv``, ``/cluster`` and ``/health``,
        ``/version``, metrics.
        """
        gateway = self.etcdAPI.gatewayResource()
        return {
            b"v3": gateway,
            b"v3beta": gateway,
            b"version": VersionResource(extra={"raftmux": _version()}),
            b"kv": KVResource(self.etcd, self.metrics, self.config.maxValueBytes),
            b"cluster": ClusterResource(self.etcd, self.metrics, gossip=self.nodeGossip),
            b"health": HealthResource(self.etcd, self.metrics),
            b"metrics": MetricsResource(self.registry),
        }

    def peerResources(self):
        """
        What only peers reach besides ``/raft``: etcd's ``/members`` (and
        ``/members/promote/<id>``, where a follower forwards a promotion) and its
        lease endpoints (``/leases``, ``/leases/internal``: a follower's
        lessor asks the leader's).
        """
        return {
            # ckit's answer (505) to gossip over HTTP/1.1: the sniffer sends
            # HTTP/1.x here, and only h2 with ckit's content type to gossip.
            b"api": self.gossip.http1Resource(),
            b"members": MembersWithPromote(MembersResource(
                self.clusterID, lambda: list(self.members.members.values())), self.etcd),
            b"leases": self.etcdAPI.leaseResource(),
        }

    def _updateCampaign(self):
        """May raft campaign?  An input to it, updated whenever the answer may change."""
        if self.rawNode is not None and self.dialer is not None:
            self.rawNode.setCampaignAllowed(self.campaignAllowed())

    def _peerKindChanged(self, address, kind):
        self._updateCampaign()

    # -- removal -------------------------------------------------------------------

    def _removedFromCluster(self):
        if not self.removed:
            self.removed = True
            self.log.warn("raftmux: this member ({id}) was removed from the cluster; "
                          "raft stops here", id=formatID(self.id))
            self.reactor.callLater(0, self._stopRaft)

    def _stopRaft(self):
        if self.nodeGossip is not None:
            self.nodeGossip.stopService()  # the others see it leave
        if self.etcd is not None:
            self.etcd.stop()
        if self.driver is not None:
            self.driver.stop()

    def _removedByPeer(self, peerID):
        self.log.warn("raftmux: member {peer} says this member was removed",
                      peer=formatID(peerID))
        self._removedFromCluster()

    # -- gossip ------------------------------------------------------------------

    def _gossipAddress(self):
        return addressOf(self.config.advertisePeerURLs[0])

    def _gossipJoinTargets(self):
        """
        Where the other members gossip: the address of each one's first
        peer URL, from the member table (the initial members until it is
        filled); etcd members (they answered as plain rafthttp) do not.
        """
        kinds = self.dialer.kinds if self.dialer is not None else {}
        if self.members is not None and self.members.ids():
            others = [self.peerURLsOf(id) for id in self.members.ids() if id != self.id]
        else:
            others = [m["peerURLs"] for m in self._initialMembers if m["id"] != self.id]
        targets = []
        for urls in others:
            if urls and kinds.get(addressOf(urls[0])) != PLAIN:
                address = joinHostPort(*addressOf(urls[0]))
                if address not in targets:
                    targets.append(address)
        return targets

    @property
    def gossipPackets(self):
        """Gossip packets received on the peer routes (the transport's counter)."""
        return int(self.registry.get_sample_value("cluster_transport_rx_packets_total") or 0)


class _ClientRoot(Resource):
    """The root of what clients reach: its children, Go's 404 for anything else."""

    def getChild(self, name, request):
        return NotFound()

    def render(self, request):
        return NotFound().render(request)


def _version():
    return raftmux.__version__
