# -*- test-case-name: raftmux.test.test_node -*-
"""
``RaftNode``: one member of a replicated key/value store, as an
``IService``.  It joins the parts: ``DiskStorage`` + ``RawNode`` +
``RaftDriver`` (consensus), a rafthttp ``Transport`` whose Agent dials
peers through ``PeerDialer`` (muxado sessions between raftmux nodes, plain
rafthttp toward etcd), the ``KVStateMachine`` with snapshots, and one
twisted.web Site served on every listening URL through a
``SniffingFactory`` (``portFactory``).
"""

import os

from prometheus_client import CollectorRegistry
from twisted.application import service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool

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
from raftmux.node.members import MemberTable, memberContext, parseMemberContext
from raftmux.node.metrics import NodeMetrics
from raftmux.raft import Config, RawNode
from raftmux.raft.core import confChangeToV2Changes
from raftmux.raft.diskstorage import DiskStorage
from raftmux.raft.driver import RaftDriver
from raftmux.raft.rawnode import Peer
from raftmux.rafthttp import MembersResource, Transport, VersionResource, formatID
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


class NodeStartError(Exception):
    """The node cannot start (the message says why); nothing was served."""


def _endpointDescription(url):
    host, port = addressOf(url)
    return "tcp:%d:interface=%s" % (port, host.replace(":", "\\:"))


class RaftNode(service.MultiService):
    """
    ``RaftNode(config)`` for a ``raftmux.node.NodeConfig``.

    ``listen``: open the config's listen URLs on start (tests that bind
    ports themselves pass False and serve ``portFactory()``).
    ``registry``: a prometheus registry (one of its own by default).
    ``whenStarted()`` fires once the node serves, or fails with
    ``NodeStartError``.
    """

    log = Logger()

    def __init__(self, config, reactor=None, registry=None, listen=True, fsync=True,
                 useMuxado=True, clientEndpoint=None, serverEndpoint=None):
        service.MultiService.__init__(self)
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self.reactor = reactor
        self.registry = registry if registry is not None else CollectorRegistry()
        self.listen = listen
        self.fsync = fsync
        self.useMuxado = useMuxado
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
        self._factory = None
        self._muxadoServer = None
        self.metrics = NodeMetrics(self, self.registry)
        self.site = NodeSite(self)
        self.tlsPolicy = ClientPolicy(config.peerTLS) if config.usesTLS else None
        self._tlsFactories = {}
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
        d.addCallbacks(self._startDone, failed)

    async def _start(self):
        config = self.config
        known = identity.load(config.identityFile)
        initialMembers = None
        if known is not None:
            self.id, self.clusterID = known["id"], known["clusterID"]
            initialMembers = known.get("members") or []
            self.log.info("raftmux: restarting member {id} of cluster {cid} from {dir}",
                          id=formatID(self.id), cid=formatID(self.clusterID), dir=config.dataDir)
        try:
            self.storage = DiskStorage(config.raftDir, fsync=self.fsync)
        except Exception as e:
            raise NodeStartError("the raft log in %s cannot be used: %s" % (config.raftDir, e)) \
                from e
        fresh = self.storage.lastIndex() == 0 and not self.storage.initialState()[0].term
        self._makeClient()
        if known is None:
            if not fresh:
                raise NodeStartError("%s holds a raft log but no identity file" % (
                    config.dataDir,))
            if config.clusterState == "existing":
                initialMembers = await self._joinExisting()
            else:
                initialMembers = [{"id": config.memberIDs[n], "name": n, "peerURLs": urls}
                                  for n, urls in config.initialCluster.items()]
            identity.save(config.identityFile, self.id, self.clusterID, config.name,
                          initialMembers)
        self.dialer.localID = self.id
        self._makeRaftParts()
        self._makeRaft(fresh and config.clusterState == "new" and known is None,
                       initialMembers)
        if self.listen:
            await self._listen()
        if config.tlsWatchInterval > 0:
            for reloadable in self._reloadables():
                reloadable.watch(self.reactor, config.tlsWatchInterval)
        self.driver.start()
        self._publisher = self.reactor.callLater(0, self._publish)
        for url in config.listenURLs:
            self.log.info("raftmux: member {name} ({id}) listening on {url} "
                          "(HTTP/1.1, h2c, gossip, muxado)",
                          name=config.name, id=formatID(self.id), url=url)
        return self

    def _makeClient(self):
        """The dialer and the Agent every request to a peer goes through."""
        self.dialer = PeerDialer(self.reactor, self.id, streamFactory=self.site,
                                 clientEndpoint=self._clientEndpoint, tlsPolicy=self.tlsPolicy,
                                 registry=self.registry, useMuxado=self.useMuxado)
        self.pool = HTTPConnectionPool(self.reactor, persistent=True)
        self.pool.maxPersistentPerHost = 8
        self.pool.retryAutomatically = False
        self.agent = Agent.usingEndpointFactory(self.reactor, self.dialer, pool=self.pool)

    def _makeRaftParts(self):
        config = self.config
        self.driver = RaftDriver(
            None, self.storage, None, self.reactor,
            tickInterval=config.heartbeatInterval, apply=self._applyEntry,
            restore=self._restoreSnapshot, requestTimeout=config.requestTimeout,
            onConfChange=self._confChanged, onApplied=self._applied)
        self.transport = Transport(
            self.id, self.clusterID, config.advertisePeerURLs, self.driver,
            reactor=self.reactor, agent=self.agent, registry=self.registry,
            snapshotDir=os.path.join(config.dataDir, "member", "snap-db"),
            onMemberRemoved=self._removedByPeer)
        self.driver.transport = self.transport
        self.site.mount(self.transport.resource(), self.resources())

    def _makeRaft(self, bootstrap, initialMembers):
        config = self.config
        snap = self.storage.snapshot()
        self.snapshotIndex = snap.metadata.index
        if self.snapshotIndex:
            self._restoreSnapshot(snap, initialMembers)
        raftConfig = Config(
            id=self.id, storage=self.storage, electionTick=config.electionTicks,
            heartbeatTick=1, applied=self.snapshotIndex, checkQuorum=True, preVote=True,
            maxSizePerMsg=1024 * 1024, maxInflightMsgs=512, mayCampaign=self.clusterIsRaftmux)
        self.rawNode = self.driver.rawNode = RawNode(raftConfig)
        self.driver.applied = self.snapshotIndex
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

    async def _joinExisting(self):
        """etcd's ``existing`` start: ask the others for the member list (spec 11.6)."""
        config = self.config
        others = [u for name, urls in config.initialCluster.items() if name != config.name
                  for u in urls]
        clusterID, members = await fetchMembers(self.agent, others)
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

    def portFactory(self, url=None):
        """
        The factory for a listening URL.  http: one sniffer routing gossip
        h2c (by content type), other h2c, HTTP/1.1 and muxado sessions.
        https: a TLS-only port (plaintext is closed) whose inner bytes go to
        the same routes, by ALPN where it decides (http/1.1,
        raftmux-muxado/1) and by sniffing otherwise (h2: gossip or Site).
        """
        info = self.config.tlsFor(url) if url else None
        if info is None:
            if self._factory is None:
                self._factory = SniffingFactory(self._routes(), registry=self.registry,
                                                name="node")
            return self._factory
        key = info.role
        if key not in self._tlsFactories:
            inner = SniffingFactory(self._routes(), registry=self.registry, name="node-tls",
                                    alpn={HTTP11: self.site, MUXADO_ALPN: self._muxadoFactory()})
            tlsFactory = tlsServerFactory(info, inner, clock=self.reactor)
            self._tlsFactories[key] = (tlsOnlyFactory(tlsFactory, registry=self.registry,
                                                      clock=self.reactor), tlsFactory)
        return self._tlsFactories[key][0]

    def _routes(self):
        return [
            (http2HeaderField(b"content-type", b"application/x.ckit"),
             self.gossip.h2Factory(), "gossip"),
            (http2(), self.site, "h2c"),
            (http1(), self.site, "http1"),
            (muxado(), self._muxadoFactory(), "muxado"),
        ]

    def _muxadoFactory(self):
        if self._muxadoServer is None:
            self._muxadoServer = MuxadoServerFactory(self.site, registry=self.registry)
        return self._muxadoServer

    def _reloadables(self):
        found = [tlsFactory.contextFactory for _, tlsFactory in self._tlsFactories.values()]
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
            self.dialer.stop()
        if self.pool is not None:
            waits.append(self.pool.closeCachedConnections())
        if self.storage is not None:
            self.storage.close()
            self.storage = None
        return defer.DeferredList(waits, consumeErrors=True)

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
        """The Site's children besides ``/raft``."""
        members = MembersResource(self.clusterID, lambda: list(self.members.members.values()))
        return {
            b"version": VersionResource(extra={"raftmux": _version()}),
            b"members": members,
            b"kv": KVResource(self),
            b"cluster": ClusterResource(self),
            b"health": HealthResource(self),
            b"metrics": MetricsResource(self.registry),
            # ckit's answer (505) to gossip over HTTP/1.1: the sniffer sends
            # HTTP/1.x here, and only h2 with ckit's content type to gossip.
            b"api": self.gossip.http1Resource(),
        }

    # -- raft callbacks -----------------------------------------------------------

    def _applyEntry(self, entry):
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

    def _confChanged(self, cc, entry, confState):
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

    def _applied(self, index):
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

    def _restoreSnapshot(self, snapshot, fallbackMembers=None):
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


def _version():
    return raftmux.__version__
