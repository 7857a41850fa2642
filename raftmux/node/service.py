# -*- test-case-name: raftmux.test.test_node -*-
"""
``RaftNode``: one member of a replicated key/value store, as an
``IService``.  It joins the parts: ``DiskStorage`` + ``RawNode`` +
``RaftDriver`` (consensus), a rafthttp ``Transport`` whose Agent dials
peers through ``PeerDialer`` (muxado sessions between raftmux nodes, plain
rafthttp toward etcd), the ``KVStateMachine`` with snapshots, and two
twisted.web Sites: the peer Site (rafthttp, ``/members`` and the client
API) and the client Site (the client API), served through a
``SniffingFactory`` per kind of listening URL (``portFactory``; who may
reach which is ``raftmux.node.listeners``).
"""

import os

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
from raftmux.gossip import GossipTransport
from raftmux.metrics import MetricsResource
from raftmux.muxado import MuxadoServerFactory
from raftmux.node import identity
from raftmux.node.api import ClusterResource, HealthResource, KVResource, NodeSite
from raftmux.node.config import addressOf
from raftmux.node.dialer import MUXADO, PLAIN, PeerDialer
from raftmux.node.join import fetchMembers
from raftmux.node.kv import KVStateMachine, encodeAttributes
from raftmux.node.listeners import (
    CLIENT_ONLY,
    PEER_ONLY,
    SHARED,
    IdentityRouter,
    listenerKind,
    peersAreVerified,
)
from raftmux.node.members import MemberTable, memberContext, parseMemberContext
from raftmux.node.metrics import NodeMetrics
from raftmux.raft import Config, RawNode
from raftmux.raft.core import confChangeToV2Changes
from raftmux.raft.diskstorage import DiskStorage
from raftmux.raft.driver import RaftDriver
from raftmux.raft.interfaces import IStateMachine
from raftmux.raft.rawnode import Peer
from raftmux.rafthttp import MembersResource, Transport, VersionResource, formatID
from raftmux.rafthttp.interfaces import IRaft
from raftmux.rafthttp.server import NotFound
from raftmux.raftpb import (
    ConfChangeAddLearnerNode,
    ConfChangeAddNode,
    ConfChangeRemoveNode,
    ConfChangeUpdateNode,
)
from raftmux.sniff import SniffingFactory, http1, http2, http2HeaderField, muxado
from raftmux.tls import H2, HTTP11, MUXADO_ALPN, ClientPolicy, tlsOnlyFactory, tlsServerFactory

__all__ = ["RaftNode", "NodeStartError"]

PUBLISH_INTERVAL = 1.0

# What the "listening on" line says each kind of URL serves.
_SERVES = {
    CLIENT_ONLY: "clients: HTTP/1.1, h2c",
    PEER_ONLY: "peers: rafthttp, gossip, muxado; HTTP/1.1, h2c",
    SHARED: "clients and peers: HTTP/1.1, h2c; rafthttp, gossip, muxado for peers",
}


class NodeStartError(Exception):
    """The node cannot start (the message says why); nothing was served."""


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


@implementer(IRaft, IStateMachine)
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

    The node is its Transport's ``IRaft`` (as etcd's server is) and its
    driver's ``IStateMachine``; the parts are built in order at start:
    storage, dialer and Agent, Transport, RawNode, then the driver.
    """

    log = Logger()

    def __init__(self, config, reactor=None, registry=None, listen=True, fsync=True,
                 useMuxado=True, clientEndpoint=None, serverEndpoint=None,
                 onStartFailure=None):
        service.MultiService.__init__(self)
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self.reactor = reactor
        self.registry = registry if registry is not None else CollectorRegistry()
        self.listen = listen
        self.fsync = fsync
        self.useMuxado = useMuxado
        self.onStartFailure = onStartFailure
        self._clientEndpoint = clientEndpoint
        self._serverEndpoint = serverEndpoint
        self.kv = KVStateMachine()
        self.members = MemberTable()
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
        self.ports = []
        self.snapshotIndex = 0
        self.confState = None
        self.removed = False
        self.gossipPackets = 0
        self._started = []
        self._startResult = None
        self._publisher = None
        self._portFactories = {}
        self._tlsFactories = []
        self._muxadoServer = None
        self.metrics = NodeMetrics(self, self.registry)
        # What peers reach (rafthttp, /members and the client API they
        # forward), and what clients reach: see raftmux.node.listeners.
        self.peerSite = NodeSite(self)
        self.clientSite = NodeSite(self)
        self.tlsPolicy = ClientPolicy(config.peerTLS) if config.usesTLS else None
        gossipTLS = None
        if self.tlsPolicy is not None and config.advertisePeerURLs[0].startswith("https:"):
            gossipTLS = lambda host: self.tlsPolicy.creatorFor(host, [H2])  # noqa: E731
        self.gossip = GossipTransport(self.reactor, self._gossipAddress(),
                                      onPacket=self._gossipPacket,
                                      onStream=lambda stream: stream.loseConnection(),
                                      contextFactory=gossipTLS, registry=self.registry)

    # -- lifecycle --------------------------------------------------------------

    def whenStarted(self):
        if self._startResult is not None:
            if isinstance(self._startResult, Failure):
                return defer.fail(self._startResult)
            return defer.succeed(self)
        d = defer.Deferred()
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
        self._makeParts(initialMembers, bootstrap)
        if known is None:
            identity.save(config.identityFile, self.id, self.clusterID, config.name,
                          initialMembers)
        if config.tlsWatchInterval > 0:
            for reloadable in self._reloadables():
                reloadable.watch(self.reactor, config.tlsWatchInterval)
        self.driver.start()
        self._publisher = self.reactor.callLater(0, self._publish)
        for url in config.listenURLs:
            self.log.info("raftmux: member {name} ({id}) listening on {url} ({serves})",
                          name=config.name, id=formatID(self.id), url=url,
                          serves=_SERVES[listenerKind(config, url)])
        return self

    def _openStorage(self):
        config = self.config
        try:
            self.storage = DiskStorage(config.raftDir, fsync=self.fsync)
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
        """Dialer and Agent, Transport, RawNode, driver: each built with what it needs."""
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
        snap = self.storage.snapshot()
        self.snapshotIndex = snap.metadata.index
        if self.snapshotIndex:
            self._restore(snap, initialMembers)
        raftConfig = Config(
            id=self.id, storage=self.storage, electionTick=config.electionTicks,
            heartbeatTick=1, applied=self.snapshotIndex, checkQuorum=True, preVote=True,
            maxSizePerMsg=1024 * 1024, maxInflightMsgs=512, logger=_RaftLog())
        self.rawNode = RawNode(raftConfig)
        if bootstrap:
            peers = [Peer(m["id"], memberContext(m["id"], m["peerURLs"], m["name"]))
                     for m in sorted(initialMembers, key=lambda m: m["id"])]
            self.rawNode.bootstrap(peers)
            self.log.info("raftmux: bootstrapped cluster {cid} with {n} members",
                          cid=formatID(self.clusterID), n=len(peers))
        elif not self.snapshotIndex:
            # Until the log replays (or, joining, the leader sends it), the
            # initial member list says where everyone is.
            for m in initialMembers or ():
                self._addMember(m["id"], m["peerURLs"], m.get("name", ""))
        self.driver = RaftDriver(
            self.rawNode, self.storage, self.transport, self.reactor, stateMachine=self,
            tickInterval=config.heartbeatInterval, requestTimeout=config.requestTimeout)
        self._updateCampaign()
        shared = self.resources()
        self.clientSite.mount(_ClientRoot(), shared)
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
        try:
            clusterID, members = await fetchMembers(
                Agent.usingEndpointFactory(self.reactor, asker), others, reactor=self.reactor,
                timeout=config.requestTimeout)
        finally:
            asker.stop()
        mine = sorted(config.advertisePeerURLs)
        me = [m for m in members if sorted(m["peerURLs"]) == mine]
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
            factory = self.portFactory(url)
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
        return [
            (http2HeaderField(b"content-type", b"application/x.ckit"),
             self.gossip.serverFactory(), "gossip"),
            (http2(), self.peerSite, "h2c"),
            (http1(), self.peerSite, "http1"),
            (muxado(), self._muxadoFactory(), "muxado"),
        ]

    def _clientRoutes(self):
        return [
            (http2(), self.clientSite, "h2c"),
            (http1(), self.clientSite, "http1"),
        ]

    def _muxadoFactory(self):
        if self._muxadoServer is None:
            self._muxadoServer = MuxadoServerFactory(self.peerSite, registry=self.registry)
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
        if self._publisher is not None and self._publisher.active():
            self._publisher.cancel()
        self._publisher = None
        if self.driver is not None:
            self.driver.stop()
        waits = []
        for port in self.ports:
            waits.append(defer.maybeDeferred(port.stopListening))
        self.ports = []
        if self.transport is not None:
            waits.append(self.transport.stop())
        if self.gossip is not None:
            waits.append(self.gossip.shutdown())
        if self.dialer is not None:
            waits.append(self.dialer.stop())
        if self.pool is not None:
            waits.append(self.pool.closeCachedConnections())
        if self.storage is not None:
            self.storage.close()
            self.storage = None
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
        return self.rawNode.raft.lead if self.rawNode is not None else 0

    @property
    def isLeader(self):
        return self.rawNode is not None and self.leader == self.id

    def peerURLsOf(self, id):
        member = self.members.get(id)
        return member.peerURLs if member is not None else []

    def clusterIsRaftmux(self):
        """
        May this member propose?  Not when any member is known not to be a
        raftmux node (it answered ``/version`` as etcd does, or the log
        holds entries that are not ours): an etcd member could not apply a
        raftmux entry.  Members not heard from yet do not block writes.
        """
        if self.kv.foreign:
            return False
        for id in self.members.ids():
            if id == self.id:
                continue
            for url in self.peerURLsOf(id):
                if self.dialer.kinds.get(addressOf(url)) == PLAIN:
                    return False
        return True

    def everyMemberIsRaftmux(self):
        """Has every other member answered ``/version`` as a raftmux node?"""
        if self.kv.foreign:
            return False
        return all(self.dialer.kinds.get(addressOf(url)) == MUXADO
                   for id in self.members.ids() if id != self.id
                   for url in self.peerURLsOf(id))

    def resources(self):
        """What clients and peers both reach: the client API, ``/version``, metrics."""
        return {
            b"version": VersionResource(extra={"raftmux": _version()}),
            b"kv": KVResource(self),
            b"cluster": ClusterResource(self),
            b"health": HealthResource(self),
            b"metrics": MetricsResource(self.registry),
        }

    def peerResources(self):
        """What only peers reach besides ``/raft``: etcd's ``/members``."""
        return {b"members": MembersResource(
            self.clusterID, lambda: list(self.members.members.values()))}

    def _updateCampaign(self):
        """May raft campaign?  An input to it, updated whenever the answer may change."""
        if self.rawNode is not None:
            self.rawNode.setCampaignAllowed(self.clusterIsRaftmux())

    def _peerKindChanged(self, address, kind):
        self._updateCampaign()

    # -- IStateMachine: the driver applies the log here ---------------------------------

    def applyEntry(self, entry):
        result = self.kv.apply(entry.Data)
        if entry.Data[4:5] == b"A" and result:
            for memberID, (name, urls) in self.kv.attributes.items():
                self.members.setAttributes(memberID, name, urls)
        return result

    def _addMember(self, id, peerURLs, name="", isLearner=False):
        self.members.add(id, peerURLs, name, isLearner)
        attrs = self.kv.attributes.get(id)
        if attrs is not None:
            self.members.setAttributes(id, *attrs)
        if id != self.id and peerURLs:
            self.dialer.setPeer(id, peerURLs)
            if self.transport.hasPeer(id):
                self.transport.updatePeer(id, peerURLs)
            else:
                self.transport.addPeer(id, peerURLs)

    def confChangeApplied(self, cc, entry, confState):
        self.confState = confState
        context = parseMemberContext(cc.context) if getattr(cc, "context", b"") else None
        for ctype, nodeID in confChangeToV2Changes(cc):
            if ctype in (ConfChangeAddNode, ConfChangeAddLearnerNode, ConfChangeUpdateNode):
                urls, name = ([], "")
                if context is not None and context[0] == nodeID:
                    urls, name = context[1], context[2]
                elif nodeID in self.members:
                    urls = self.peerURLsOf(nodeID)
                self._addMember(nodeID, urls, name, ctype == ConfChangeAddLearnerNode)
                self.log.info("raftmux: member {id} {what} at {urls}", id=formatID(nodeID),
                              what="updated" if ctype == ConfChangeUpdateNode else "added",
                              urls=",".join(urls))
            elif ctype == ConfChangeRemoveNode:
                self.members.remove(nodeID)
                self.dialer.removePeer(nodeID)
                self.log.info("raftmux: member {id} removed", id=formatID(nodeID))
                if nodeID == self.id:
                    self._removedFromCluster()
        self._updateCampaign()

    def _removedFromCluster(self):
        if not self.removed:
            self.removed = True
            self.log.warn("raftmux: this member ({id}) was removed from the cluster; "
                          "raft stops here", id=formatID(self.id))
            self.reactor.callLater(0, self.driver.stop)

    def _removedByPeer(self, peerID):
        self.log.warn("raftmux: member {peer} says this member was removed",
                      peer=formatID(peerID))
        self._removedFromCluster()

    def appliedTo(self, index):
        self._updateCampaign()
        if index - self.snapshotIndex < self.config.snapshotCount:
            return
        confState = self.confState or self.rawNode.raft.prs.confState()
        data = self.kv.snapshot(self.members.asJSON())
        self.storage.createSnapshot(index, confState, data)
        self.snapshotIndex = index
        compactTo = index - self.config.snapshotCatchUpEntries
        if compactTo > self.storage.firstIndex():
            self.storage.compact(compactTo)
        self.log.info("raftmux: snapshot at index {index} ({keys} keys), log compacted to {to}",
                      index=index, keys=len(self.kv.data), to=max(compactTo, 0))

    def restoreSnapshot(self, snapshot):
        self._restore(snapshot)
        self._updateCampaign()

    def _restore(self, snapshot, fallbackMembers=None):
        members = self.kv.restore(snapshot.data)
        voters = set(snapshot.metadata.conf_state.voters) | set(
            snapshot.metadata.conf_state.learners)
        if members is not None:
            self.members.restore(members)
        else:
            # A foreign (etcd) snapshot: keep what we know of the members.
            for m in fallbackMembers or ():
                if m["id"] not in self.members:
                    self.members.add(m["id"], m["peerURLs"], m.get("name", ""))
            for id in list(self.members.members):
                if id not in voters:
                    self.members.remove(id)
        for id in self.transport.peerIDs():
            if id not in self.members:
                self.transport.removePeer(id)
                self.dialer.removePeer(id)
        for id, member in list(self.members.members.items()):
            self._addMember(id, member.peerURLs, member.name, member.isLearner)
        self.confState = snapshot.metadata.conf_state
        self.snapshotIndex = snapshot.metadata.index
        self.log.info("raftmux: restored snapshot at index {index} ({keys} keys)",
                      index=snapshot.metadata.index, keys=len(self.kv.data))

    # -- publishing our client URLs -------------------------------------------------

    def _publish(self):
        """etcd's publish loop: put our name and client URLs in the log, once."""
        self._publisher = None
        if self.driver is None or not self.driver.running or self.removed:
            return
        me = self.members.get(self.id)
        wanted = self.config.advertiseClientURLs
        if me is not None and me.clientURLs == wanted and me.name == self.config.name:
            return
        # Strict here: a proposal forwarded to an etcd leader would be
        # appended to etcd's log, which etcd cannot apply.
        if self.leader and self.everyMemberIsRaftmux():
            self.driver.forwardProposal(encodeAttributes(self.id, self.config.name, wanted))
        self._publisher = self.reactor.callLater(PUBLISH_INTERVAL, self._publish)

    # -- gossip ------------------------------------------------------------------

    def _gossipAddress(self):
        return addressOf(self.config.advertisePeerURLs[0])

    def _gossipPacket(self, data, fromAddress, timestamp):
        self.gossipPackets += 1


class _ClientRoot(Resource):
    """The root of what clients reach: its children, Go's 404 for anything else."""

    def getChild(self, name, request):
        return NotFound()

    def render(self, request):
        return NotFound().render(request)


def _version():
    return raftmux.__version__
