# -*- test-case-name: raftmux.test.test_ckit_node -*-
"""
``ClusterGossip``: what a raftmux node runs to gossip its membership over
its peer port (ckit's HTTP/2 transport), and what it shows an operator.

It is built with the node's name, raft member ID, client URLs and raft
role; those travel as memberlist node metadata (compact JSON, at most 512
bytes: ``{"id": "8e9e05c52164694d", "role": "leader", "urls": [...]}``;
a Go ckit node ignores metadata, so they mix).  ``update(...)`` changes
them and gossips the change.  ``view()`` is the JSON ``GET
/cluster/gossip`` shows: every member we know, with memberlist's state
(alive, suspect, dead, left), incarnation, when it entered that state
(``stateChange``, the reactor's time), ckit state and metadata.

Gossip never changes raft membership: this only reports.

    gossip = ClusterGossip(reactor, "node-1", memberID=0x8e9e05c52164694d,
                           clientURLs=["http://10.0.0.1:2379"], role="follower",
                           advertiseAddress="10.0.0.1:2380", join=["10.0.0.2:2380"])
    sniffer = SniffingFactory([(http2HeaderField("content-type", "application/x.ckit"),
                                gossip.serverFactory()), ...])
    gossip.startService()
    gossip.update(role="leader")
    gossip.view()
"""

import json

from twisted.application.service import Service
from twisted.internet import defer

from raftmux.ckit.core import encodeMeta
from raftmux.ckit.node import CkitNode, ckitConfig
from raftmux.ckit.peer import PeerState, stateName
from raftmux.memberlist.ckittransport import CkitTransport
from raftmux.memberlist.messages import NodeStateType

#: rejoin the given peers and the members we hold dead this often (seconds)
REJOIN_INTERVAL = 30.0


def decodeMeta(data):
    """A member's metadata as a dict (``{}`` when it sent none or something else)."""
    try:
        value = json.loads(bytes(data).decode("utf-8")) if data else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class ClusterGossip(Service):
    def __init__(self, reactor, name, memberID, clientURLs, role, advertiseAddress=None,
                 join=(), transport=None, config=None, contextFactory=None,
                 rejoinInterval=REJOIN_INTERVAL):
        if transport is None:
            transport = CkitTransport(reactor, advertiseAddress, contextFactory=contextFactory)
        self.transport = transport
        self.memberID = memberID
        self.clientURLs = list(clientURLs)
        self.role = role
        self.joinAddresses = list(join)
        self.node = CkitNode(config if config is not None else ckitConfig(name), transport,
                             reactor=reactor, nodeMeta=self._meta,
                             rejoinInterval=rejoinInterval)
        self._meta()  # refuse metadata that cannot fit, now rather than at start

    @property
    def name(self):
        return self.node.name

    def serverFactory(self):
        """The gossip server to mount on the peer port (when the transport is ckit's)."""
        return self.transport.serverFactory()

    def _meta(self):
        return encodeMeta({"id": "%x" % (self.memberID,) if isinstance(self.memberID, int)
                           else str(self.memberID),
                           "urls": self.clientURLs, "role": self.role})

    # -- lifecycle --------------------------------------------------------------------

    def startService(self):
        Service.startService(self)
        self.node.startService()
        d = self.node.whenRunning()
        d.addCallback(lambda _: self.node.start(self.joinAddresses) if self.joinAddresses else 0)
        d.addErrback(lambda f: None)  # the rejoin loop keeps trying
        return d

    def stopService(self):
        Service.stopService(self)
        return self.node.stopService()

    def setJoin(self, addresses):
        """
        The peers to join from now on (a raft member table changed): those
        not joined before are joined at once, all of them by the rejoin
        loop; fires with how many answered.
        """
        addresses = list(addresses)
        new = [a for a in addresses if a not in self.joinAddresses]
        self.joinAddresses = addresses
        self.node.setJoinAddresses(addresses)
        if not new or not self.node.memberlist.running or self.node.memberlist.core is None:
            return defer.succeed(0)
        return self.node.start(new).addErrback(lambda f: 0)  # the rejoin loop keeps trying

    # -- metadata -----------------------------------------------------------------------

    def update(self, memberID=None, clientURLs=None, role=None, timeout=5.0):
        """
        Change what we announce (None keeps a field) and gossip it; fires
        once sent enough times.  ValueError if it no longer fits in 512 bytes.
        """
        old = (self.memberID, self.clientURLs, self.role)
        if memberID is not None:
            self.memberID = memberID
        if clientURLs is not None:
            self.clientURLs = list(clientURLs)
        if role is not None:
            self.role = role
        try:
            self._meta()
        except ValueError:
            self.memberID, self.clientURLs, self.role = old
            return defer.fail()
        if not self.node.memberlist.running or self.node.memberlist.core is None:
            return defer.succeed(None)
        return self.node.memberlist.updateNode(timeout)

    # -- what an operator sees ---------------------------------------------------------------

    def view(self):
        """``{"name": ours, "members": [...]}``, members sorted by name."""
        members = []
        core = self.node.core
        if self.node.memberlist.core is not None:
            for node in sorted(self.node.memberlist.allNodes(), key=lambda n: n.name):
                held = core.stateOf(node.name)
                meta = decodeMeta(node.meta)
                members.append({
                    "name": node.name,
                    "address": node.address,
                    "isSelf": node.name == self.name,
                    "state": NodeStateType(node.state).name.lower(),
                    "incarnation": node.incarnation,
                    "ckitState": stateName(held.newState if held is not None
                                           else PeerState.VIEWER),
                    "memberID": meta.get("id"),
                    "clientURLs": meta.get("urls"),
                    "role": meta.get("role"),
                    "stateChange": node.stateChange if node.stateChange > float("-inf")
                    else None,
                })
        return {"name": self.name, "members": members}
