# -*- test-case-name: raftmux.test.test_node_gossip -*-
"""
``NodeGossip``: a member's gossip, ``raftmux.ckit.ClusterGossip`` over
the node's own peer port, kept in step with raft; and what ``GET
/cluster/gossip`` shows.

* It announces the member's name, raft member ID, advertised client URLs
  and raft role (``leader``, ``candidate``, ``follower``, ``learner``) as
  memberlist node metadata.  The role is read again on every leadership
  change (it is the driver's ``IRaftObserver``) and every
  ``refreshInterval`` (pre-votes and promotions tell no observer).
* It joins the other members of the raft member table (``joinTargets()``,
  the node's answer: each member's first peer URL, etcd members left out),
  read again every ``refreshInterval``.  A target gossip has never heard
  of (it was not up yet when we joined) is joined again on a refresh,
  backing off from ``refreshInterval`` to ``rejoinInterval``; ckit's
  rejoin loop tries every target and the dead every ``rejoinInterval``.
  Gossip only reports: it never adds or removes a raft member.
* Once running it is a ckit participant; stopping, it leaves (others see
  it ``left``), then shuts the transport down.
* ``view()``: every raft member with its raft state beside its gossip
  state, then the members only gossip knows.  memberlist forgets a dead
  member ``gossipToTheDeadTime`` after its death; the view keeps showing
  such a raft member as last seen (``reaped``).

It is built once the member's ID is known (``RaftNode`` builds it with
its parts); the transport exists before, mounted on the peer routes.
"""

import ipaddress

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from raftmux.ckit.cluster import ClusterGossip
from raftmux.ckit.node import CKIT_PACKET_SIZE
from raftmux.ckit.peer import PeerState
from raftmux.memberlist.messages import joinHostPort
from raftmux.raft.interfaces import IRaftObserver
from raftmux.rafthttp import formatID

__all__ = ["NodeGossip", "REFRESH_INTERVAL", "composeView", "rememberEntries"]

#: how often the role and the member table are read again (seconds)
REFRESH_INTERVAL = 1.0
#: how long a metadata update may take to be gossiped before we stop waiting
UPDATE_TIMEOUT = 5.0


@implementer(IRaftObserver)
class NodeGossip(Service):
    """
    ``etcd``: the node's ``EtcdNode`` (member table, leader, role,
    progress); ``transport``: the ``CkitTransport`` the node mounts on its
    peer routes; ``options``: ``NodeConfig.gossip``; ``advertiseAddress``:
    ``(host, port)`` of the node's first advertised peer URL (a host name
    is resolved at start); ``joinTargets()``: the other members'
    ``host:port``.
    """

    log = Logger()

    def __init__(self, reactor, etcd, transport, options, name, clientURLs, advertiseAddress,
                 joinTargets, refreshInterval=REFRESH_INTERVAL):
        self.reactor = reactor
        self.etcd = etcd
        self.transport = transport
        self.options = options
        self.name = name
        self.clientURLs = list(clientURLs)
        self.host, self.port = advertiseAddress
        self.joinTargets = joinTargets
        self.refreshInterval = refreshInterval
        #: the ``ClusterGossip``, once started
        self.cluster = None
        #: why gossip does not run, when it does not
        self.problem = None if options.enabled else "off (--gossip-profile off)"
        self._role = None
        self._loop = None
        self._stopped = None
        self._lastSeen = {}
        self._retries = {}

    # -- lifecycle ---------------------------------------------------------------------

    def startService(self):
        Service.startService(self)
        if not self.options.enabled:
            return
        d = self._advertiseIP()
        d.addCallback(self._startCluster)
        d.addErrback(self._startFailed)

    def _advertiseIP(self):
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return self.reactor.resolve(self.host)
        return defer.succeed(self.host)

    def _startCluster(self, ip):
        if not self.running:
            return
        self._role = self.etcd.role()
        config = self.options.memberlistConfig(
            name=self.name, advertiseAddr=ip, advertisePort=self.port,
            disableTcpPings=True, udpBufferSize=CKIT_PACKET_SIZE)
        self.cluster = ClusterGossip(
            self.reactor, self.name, self.etcd.memberID, self.clientURLs, self._role,
            join=self.joinTargets(), transport=self.transport, config=config,
            rejoinInterval=self.options.rejoinInterval)
        self.cluster.startService()
        d = self.cluster.node.whenRunning()
        d.addCallback(lambda node: node.changeState(PeerState.PARTICIPANT)
                      if self.running else None)
        d.addErrback(self._logFailure, "could not become a participant")
        self._loop = task.LoopingCall(self.refresh)
        self._loop.clock = self.reactor
        self._loop.start(self.refreshInterval, now=False).addErrback(
            self._logFailure, "refresh loop")
        self.log.info("raftmux: member {name} gossips as {address} ({profile})",
                      name=self.name, address=joinHostPort(ip, self.port),
                      profile=self.options.profile)

    def _startFailed(self, failure):
        self.problem = "cannot start: %s" % (failure.getErrorMessage(),)
        self.log.error("raftmux: member {name}: gossip {problem}", name=self.name,
                       problem=self.problem)

    def _logFailure(self, failure, what):
        self.log.debug("raftmux: gossip: {what}: {why}", what=what,
                       why=failure.getErrorMessage())

    def stopService(self):
        """Leave (others see us ``left``), stop memberlist, shut the transport down."""
        if self._stopped is None:
            Service.stopService(self)
            if self._loop is not None and self._loop.running:
                self._loop.stop()
            if self.cluster is not None:
                self._stopped = self.cluster.stopService()
            else:
                self._stopped = self.transport.stop()
            self._stopped.addErrback(self._logFailure, "stopping")
        done: defer.Deferred[None] = defer.Deferred()

        def fire(result):
            done.callback(None)
            return result
        self._stopped.addBoth(fire)
        return done

    # -- keeping in step with raft ------------------------------------------------------

    def leaderChanged(self, leaderID, term):
        self._refreshRole()

    def leadershipChanged(self, isLeader):
        self._refreshRole()

    def refresh(self):
        """Read the role and the member table again; note what gossip shows."""
        if self.cluster is None or not self.running:
            return
        self._refreshRole()
        targets = self.joinTargets()
        previous = self.cluster.joinAddresses
        if targets != previous:
            self.cluster.setJoin(targets)  # joins the new ones at once
        entries = self.cluster.view()["members"]
        rememberEntries(self._lastSeen, entries, self.etcd.members())
        self._joinUnknown([t for t in targets if t in previous],
                          {e["address"] for e in entries})

    def _joinUnknown(self, targets, known):
        """Join the targets gossip has never heard of, each backing off on failure."""
        now = self.reactor.seconds()
        due = []
        for target in targets:
            if target in known:
                self._retries.pop(target, None)
                continue
            when, delay = self._retries.get(target, (now, self.refreshInterval))
            if when <= now:
                due.append(target)
                self._retries[target] = (now + delay,
                                         min(2 * delay, self.options.rejoinInterval))
        for target in list(self._retries):
            if target not in targets:
                del self._retries[target]
        if due and self.cluster is not None and self.gossipRunning:
            self.cluster.node.start(due).addErrback(self._logFailure, "joining %s" % (
                ", ".join(due),))

    def _refreshRole(self):
        if self.cluster is None or not self.running:
            return
        role = self.etcd.role()
        if role != self._role:
            self._role = role
            self.cluster.update(role=role, timeout=UPDATE_TIMEOUT).addErrback(
                self._logFailure, "announcing role %s" % (role,))

    # -- what an operator sees -----------------------------------------------------------

    @property
    def gossipRunning(self):
        return bool(self.cluster is not None and self.cluster.node.memberlist.core is not None
                    and self.cluster.node.memberlist.running)

    def settings(self):
        config = self.options.memberlistConfig()
        return {
            "enabled": self.options.enabled,
            "running": self.gossipRunning,
            "address": (self.cluster.node.address
                        if self.cluster is not None and self.gossipRunning else None),
            "problem": self.problem,
            "profile": self.options.profile,
            "probeInterval": config.probeInterval,
            "probeTimeout": config.probeTimeout,
            "gossipInterval": config.gossipInterval,
            "suspicionMult": config.suspicionMult,
            "rejoinInterval": self.options.rejoinInterval,
        }

    def view(self):
        """``GET /cluster/gossip`` (see ``composeView``)."""
        entries = self.cluster.view()["members"] if self.cluster is not None else []
        raftMembers = self.etcd.members()
        rememberEntries(self._lastSeen, entries, raftMembers)
        view = composeView(entries, raftMembers, self._lastSeen, self.etcd.memberID,
                           self.etcd.leader(), self.etcd.progress(), self.reactor.seconds())
        return dict({"name": self.name, "gossip": self.settings()}, **view)


def rememberEntries(lastSeen, entries, raftMembers):
    """
    Keep in ``lastSeen`` (name -> entry) each member's latest gossip entry,
    so a raft member memberlist has reaped is still shown as last seen;
    forget those neither gossip nor the member table still knows.
    """
    wanted = {m.name for m in raftMembers} | {formatID(m.ID) for m in raftMembers}
    for entry in entries:
        if not entry["isSelf"]:
            lastSeen[entry["name"]] = entry
    current = {entry["name"] for entry in entries}
    for name, entry in list(lastSeen.items()):
        if name not in current and name not in wanted and entry["memberID"] not in wanted:
            del lastSeen[name]


def composeView(entries, raftMembers, lastSeen, memberID, leader, progress, now):
    """
    Raft's member table beside gossip's view: ``{"memberID", "leader",
    "members": [...]}``.  Each raft member (``raftMembers``: etcd's
    ``Member`` messages, in the table's order) with ``inRaft`` true, its
    raft state (``isLeader``, ``isLearner``, and ``match`` when
    ``progress``, the leader's, is given) and ``gossip`` (``state``: alive,
    suspect, dead, left, or unknown; ``reaped`` when memberlist forgot it
    and this is how it was last seen); then the members only gossip knows
    (``inRaft`` false).  ``entries``: ``ClusterGossip.view()``'s members;
    they are matched by the member ID they announce (by name when they
    announce none, as a Go ckit node does).
    """
    byID = {e["memberID"]: e for e in entries if e["memberID"]}
    byName = {e["name"]: e for e in entries}
    matched = set()
    members = []
    for m in raftMembers:
        id = formatID(m.ID)
        entry = byID.get(id)
        if entry is None and m.name in byName and not byName[m.name]["memberID"]:
            entry = byName[m.name]
        reaped = False
        if entry is None:
            entry = _lastSeenFor(lastSeen, id, m.name)
            reaped = entry is not None
        else:
            matched.add(entry["name"])
        row = {"id": id, "name": m.name, "inRaft": True, "isSelf": m.ID == memberID,
               "peerURLs": list(m.peerURLs), "clientURLs": list(m.clientURLs),
               "isLeader": m.ID == leader, "isLearner": bool(m.isLearner)}
        if progress is not None:
            row["match"] = progress.get(m.ID)
        row["gossip"] = _gossipState(entry, now, reaped)
        members.append(row)
    for entry in entries:
        if entry["name"] in matched:
            continue
        members.append({"id": entry["memberID"], "name": entry["name"], "inRaft": False,
                        "isSelf": entry["isSelf"], "clientURLs": entry["clientURLs"] or [],
                        "gossip": _gossipState(entry, now)})
    return {"memberID": formatID(memberID), "leader": formatID(leader), "members": members}


def _lastSeenFor(lastSeen, id, name):
    for entry in lastSeen.values():
        if entry["memberID"] == id or (not entry["memberID"] and entry["name"] == name):
            return entry
    return None


def _gossipState(entry, now, reaped=False):
    """One member's gossip columns (``{"state": "unknown"}`` when never seen)."""
    if entry is None:
        return {"state": "unknown"}
    changed = entry["stateChange"]
    state = {"state": entry["state"], "incarnation": entry["incarnation"],
             "ckitState": entry["ckitState"], "role": entry["role"],
             "address": entry["address"], "lastChange": changed,
             "lastChangeAgo": round(now - changed, 3) if changed is not None else None}
    if reaped:
        state["reaped"] = True
    return state
