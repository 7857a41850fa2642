# -*- test-case-name: raftmux.test.test_node_gossip -*-
"""
A member's gossip (``raftmux.node.gossip.NodeGossip``) and ``GET
/cluster/gossip``:

- the ``--gossip-*`` flags and their checks;
- the view's composition (raft members beside gossip entries, members only
  gossip knows, a reaped member shown as last seen), synchronously;
- ``NodeGossip`` itself over memberlist's in-memory network on a fake
  clock (a fake member table): alive with roles, a vanished member suspect
  then dead within the bound, roles announced at a leader change, a stopped
  member left, an added member joined;
- three ``RaftNode``s in this process with fast gossip timings: all alive
  with their roles and IDs; one stopped abruptly is seen suspect, then
  dead, within the configured timeouts while the member table stays;
  roles follow a leadership transfer; join addresses follow the member
  table; a member only gossip knows never enters raft; a removed member
  leaves; ``--gossip-profile off``;
- real ``twistd raftmux`` processes: kill -9 of one is seen suspect, then
  dead, by the others, and by ``python -m raftmux.cluster status``.
"""

import json

from twisted.internet import reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from raftmux import tap
from raftmux.ckit import ClusterGossip, ckitConfig
from raftmux.cluster import LocalCluster
from raftmux.cluster.cli import formatStatus
from raftmux.cluster.supervisor import Supervisor
from raftmux.etcdpb import rpc_pb2
from raftmux.memberlist import CkitTransport
from raftmux.memberlist.config import MemberlistConfig
from raftmux.memberlist.service import JoinError
from raftmux.node.config import ConfigError, GossipOptions, NodeConfig
from raftmux.node.gossip import NodeGossip, composeView, rememberEntries
from raftmux.node.testing import stopNode, urlOf
from raftmux.rafthttp.testing import waitFor
from raftmux.test.test_node import ClusterCase
from raftmux.test.test_node_cli import scratchDirectory
from raftmux.testing.membership import MemoryNetwork

FAST = {"heartbeat-interval": 50, "election-timeout": 500}
# Probes every 0.2 s; with three members a suspect is declared dead after
# 5 x 0.2 s (one other member can confirm, fewer than the 3 that would
# stretch it), so a dead member shows as suspect for a second first.
GOSSIP = {"gossip-probe-interval": 0.2, "gossip-probe-timeout": 0.1, "gossip-interval": 0.05,
          "gossip-suspicion-mult": 5, "gossip-rejoin-interval": 1.0}
GOSSIP_FLAGS = [a for k, v in sorted(GOSSIP.items()) for a in ("--" + k, str(v))]
# The longest memberlist may take to declare a dead member dead here: until
# it is probed (round-robin over the 2 others), the failed probe, the
# suspicion's longest timeout (6 x its shortest), a few gossip rounds; the
# tests allow twice that.
DETECTION_BOUND = 2 * (2 * 0.2 + 0.2 + 6 * 5 * 0.2 + 1.0)


def gossipOf(view, name):
    """The ``gossip`` columns of member ``name`` in a ``/cluster/gossip`` view."""
    for row in view["members"]:
        if row["name"] == name:
            return row["gossip"]
    return None


class GossipFlagTests(SynchronousTestCase):
    """``--gossip-profile`` and the timings over it."""

    def config(self, **flags):
        return NodeConfig({k.replace("_", "-"): v for k, v in flags.items()})

    def test_defaultsAreMemberlistLAN(self):
        options = self.config().gossip
        self.assertEqual(options, GossipOptions())
        self.assertTrue(options.enabled)
        config = options.memberlistConfig(name="n1")
        lan = MemberlistConfig.lan(name="n1")
        self.assertEqual((config.probeInterval, config.probeTimeout, config.gossipInterval,
                          config.suspicionMult, config.gossipToTheDeadTime),
                         (lan.probeInterval, lan.probeTimeout, lan.gossipInterval,
                          lan.suspicionMult, lan.gossipToTheDeadTime))
        self.assertEqual(options.rejoinInterval, 30.0)

    def test_profilesAndOverrides(self):
        local = self.config(gossip_profile="local").gossip.memberlistConfig()
        self.assertEqual((local.probeTimeout, local.suspicionMult), (0.2, 3))
        wan = self.config(gossip_profile="wan").gossip.memberlistConfig()
        self.assertEqual((wan.probeInterval, wan.probeTimeout), (5.0, 3.0))
        options = self.config(gossip_profile="wan", gossip_probe_interval="0.4",
                              gossip_probe_timeout="0.1", gossip_interval="0.05",
                              gossip_suspicion_mult="2", gossip_rejoin_interval="3").gossip
        config = options.memberlistConfig(name="x")
        self.assertEqual((config.name, config.probeInterval, config.probeTimeout,
                          config.gossipInterval, config.suspicionMult, config.gossipNodes),
                         ("x", 0.4, 0.1, 0.05, 2, 4))  # gossipNodes stays WAN's
        self.assertEqual(options.rejoinInterval, 3.0)
        off = self.config(gossip_profile="off").gossip
        self.assertFalse(off.enabled)

    def test_badValuesNameTheFlag(self):
        for flags, text in [
                ({"gossip_profile": "moon"}, "--gossip-profile must be one of lan, local, wan, off"),
                ({"gossip_probe_interval": "0"}, "--gossip-probe-interval must be positive"),
                ({"gossip_probe_timeout": "soon"}, "--gossip-probe-timeout must be a number"),
                ({"gossip_suspicion_mult": "-1"}, "--gossip-suspicion-mult must be positive"),
                ({"gossip_rejoin_interval": "0"}, "--gossip-rejoin-interval must be positive"),
                ({"gossip_probe_timeout": "1"}, "--gossip-probe-timeout (1 s) must be shorter"),
                ({"gossip_profile": "wan", "gossip_probe_interval": "2"},
                 "--gossip-probe-timeout (3 s) must be shorter than --gossip-probe-interval (2 s)")]:
            error = self.assertRaises(ConfigError, self.config, **flags)
            self.assertIn(text, str(error))

    def test_twistdFlags(self):
        """The flags reach the config from the command line and from ETCD_GOSSIP_*."""
        options = tap.Options(environ={"ETCD_GOSSIP_INTERVAL": "0.1"})
        options.parseOptions(["--gossip-profile", "local", "--gossip-probe-interval", "0.5"])
        gossip = options["config"].gossip
        self.assertEqual((gossip.profile, gossip.probeInterval, gossip.gossipInterval),
                         ("local", 0.5, 0.1))
        self.assertIsNone(gossip.probeTimeout)
        self.assertEqual(tap.shownDefault("gossip-probe-interval"), "<profile's>")
        self.assertEqual(tap.shownDefault("gossip-profile"), "lan")


def _member(id, name, learner=False):
    return rpc_pb2.Member(ID=id, name=name, peerURLs=["http://10.0.0.%d:2380" % (id,)],
                          clientURLs=["http://10.0.0.%d:2379" % (id,)], isLearner=learner)


def _entry(name, memberID, state="alive", isSelf=False, stateChange=100.0, role="follower"):
    return {"name": name, "address": "10.0.0.9:2380", "isSelf": isSelf, "state": state,
            "incarnation": 3, "ckitState": "participant", "memberID": memberID,
            "clientURLs": ["http://c"], "role": role, "stateChange": stateChange}


class ComposeViewTests(SynchronousTestCase):
    """The view's composition, without a network."""

    def test_raftMembersBesideGossip(self):
        members = [_member(1, "n1"), _member(2, "n2"), _member(3, "n3", learner=True),
                   _member(4, "n4")]
        entries = [_entry("n1", "1", isSelf=True, role="leader"),
                   _entry("renamed", "2", state="suspect", stateChange=110.0),
                   _entry("n3", None),  # announces no ID (a Go ckit node): matched by name
                   _entry("stranger", "99", state="dead")]
        view = composeView(entries, members, {}, 1, 1, {1: 9, 2: 7}, now=120.0)
        self.assertEqual((view["memberID"], view["leader"]), ("1", "1"))
        rows = view["members"]
        self.assertEqual([(r["name"], r["inRaft"]) for r in rows],
                         [("n1", True), ("n2", True), ("n3", True), ("n4", True),
                          ("stranger", False)])
        self.assertEqual(rows[0], {
            "id": "1", "name": "n1", "inRaft": True, "isSelf": True,
            "peerURLs": ["http://10.0.0.1:2380"], "clientURLs": ["http://10.0.0.1:2379"],
            "isLeader": True, "isLearner": False, "match": 9,
            "gossip": {"state": "alive", "incarnation": 3, "ckitState": "participant",
                       "role": "leader", "address": "10.0.0.9:2380", "lastChange": 100.0,
                       "lastChangeAgo": 20.0}})
        self.assertEqual((rows[1]["gossip"]["state"], rows[1]["gossip"]["lastChangeAgo"],
                          rows[1]["match"]), ("suspect", 10.0, 7))
        self.assertTrue(rows[2]["isLearner"])
        self.assertEqual(rows[2]["gossip"]["state"], "alive")
        self.assertEqual(rows[3]["gossip"], {"state": "unknown"})
        self.assertIsNone(rows[3]["match"])
        self.assertEqual(rows[4], {
            "id": "99", "name": "stranger", "inRaft": False, "isSelf": False,
            "clientURLs": ["http://c"], "gossip": {
                "state": "dead", "incarnation": 3, "ckitState": "participant",
                "role": "follower", "address": "10.0.0.9:2380", "lastChange": 100.0,
                "lastChangeAgo": 20.0}})

    def test_followerViewHasNoProgress(self):
        view = composeView([], [_member(1, "n1")], {}, 1, 0, None, now=0.0)
        self.assertNotIn("match", view["members"][0])
        self.assertEqual(view["leader"], "0")

    def test_reapedMemberShownAsLastSeen(self):
        """
        memberlist forgets the dead after a while; a raft member it forgot
        is shown as last seen, marked ``reaped``; an entry neither side
        knows any more is forgotten.
        """
        members = [_member(1, "n1"), _member(2, "n2")]
        lastSeen = {}
        rememberEntries(lastSeen, [_entry("n1", "1", isSelf=True), _entry("n2", "2", "dead"),
                                   _entry("visitor", "50", "left")], members)
        self.assertEqual(sorted(lastSeen), ["n2", "visitor"])  # never ourselves
        rememberEntries(lastSeen, [_entry("n1", "1", isSelf=True)], members)
        self.assertEqual(sorted(lastSeen), ["n2"])
        view = composeView([_entry("n1", "1", isSelf=True)], members, lastSeen, 1, 1, None,
                           now=130.0)
        self.assertEqual(view["members"][1]["gossip"]["state"], "dead")
        self.assertTrue(view["members"][1]["gossip"]["reaped"])
        self.assertEqual(len(view["members"]), 2)
        rememberEntries(lastSeen, [], members[:1])  # n2 left the member table too
        self.assertEqual(lastSeen, {})


class _FakeEtcd:
    """What ``NodeGossip`` reads of its ``EtcdNode``: the member table, leader and role."""

    def __init__(self, table, memberID):
        self.table = table
        self.memberID = memberID

    def members(self):
        return [self.table.members[id] for id in sorted(self.table.members)]

    def leader(self):
        return self.table.leader

    def role(self):
        return "leader" if self.table.leader == self.memberID else "follower"

    def progress(self):
        return None


class _Table:
    """A member table shared by the fake members: ID -> ``Member``, and the leader."""

    def __init__(self):
        self.members = {}
        self.leader = 0

    def add(self, id, name, port):
        self.members[id] = rpc_pb2.Member(
            ID=id, name=name, peerURLs=["http://127.0.0.1:%d" % (port,)],
            clientURLs=["http://127.0.0.1:%d" % (port + 1,)])


class NodeGossipClockTests(SynchronousTestCase):
    """
    ``NodeGossip`` over memberlist's in-memory network on a fake clock
    (deterministic): three members see each other alive with their roles;
    one vanishing (kill -9) is suspect, then dead, within the bound the
    timings give; roles follow the leader; a stopped member is seen ``left``;
    a member added to the table is joined once it is up.
    """

    options = GossipOptions(probeInterval=0.2, probeTimeout=0.1, gossipInterval=0.05,
                            suspicionMult=5, rejoinInterval=1.0)

    def setUp(self):
        self.clock = task.Clock()
        self.net = MemoryNetwork(self.clock, latency=0.001)
        self.table = _Table()
        self.nodes = {}

    def add(self, id, name, start=True):
        port = 7000 + 10 * id
        self.table.add(id, name, port)
        if start:
            self.start(id)

    def start(self, id):
        member = self.table.members[id]
        port = 7000 + 10 * id

        def targets():
            return ["127.0.0.1:%d" % (7000 + 10 * other,) for other in sorted(self.table.members)
                    if other != id]
        node = NodeGossip(self.clock, _FakeEtcd(self.table, id),
                          self.net.transport("127.0.0.1:%d" % (port,)), self.options,
                          member.name, member.clientURLs, ("127.0.0.1", port), targets)
        node.startService()
        self.nodes[id] = node
        self.addCleanup(self.stop, id)
        return node

    def stop(self, id):
        node = self.nodes[id]
        if node.running:
            box: list[object] = []
            node.stopService().addBoth(box.append)
            self.advanceUntil(lambda: box, 10.0, "member %d stopped" % (id,))

    def advanceUntil(self, predicate, limit, what, step=0.01):
        """Advance the fake clock until ``predicate()``: the simulated seconds it took."""
        start = self.clock.seconds()
        for _ in range(int(limit / step) + 1):
            if predicate():
                return self.clock.seconds() - start
            self.clock.advance(step)
        if not predicate():
            self.fail("%s: not within %.1f s (fake clock)" % (what, limit))
        return self.clock.seconds() - start

    def states(self, viewer, name):
        return gossipOf(self.nodes[viewer].view(), name)

    def allAlive(self, ids=None):
        ids = ids or [id for id, n in self.nodes.items() if n.running]
        for viewer in ids:
            for id in ids:
                gossip = self.states(viewer, self.table.members[id].name)
                role = "leader" if self.table.leader == id else "follower"
                if gossip["state"] != "alive" or gossip.get("role") != role \
                        or gossip.get("ckitState") != "participant":
                    return False
        return True

    def threeMembers(self):
        self.table.leader = 1
        for id, name in ((1, "n1"), (2, "n2"), (3, "n3")):
            self.add(id, name)
        self.advanceUntil(self.allAlive, 10.0, "every member alive in every view")

    def test_aliveThenKilledSuspectThenDead(self):
        """
        The view on n1: raft's three members, all alive; n3 vanishing is
        suspect, then dead, in both other views within ``DETECTION_BOUND``
        (simulated) seconds and no sooner than the suspicion timeout.
        """
        self.threeMembers()
        view = self.nodes[1].view()
        self.assertEqual([(r["name"], r["inRaft"], r["isSelf"], r["isLeader"])
                          for r in view["members"]],
                         [("n1", True, True, True), ("n2", True, False, False),
                          ("n3", True, False, False)])
        # n1 started alone; its next refresh (every second) reads the table again
        self.advanceUntil(lambda: sorted(self.nodes[1].cluster.joinAddresses) == [
            "127.0.0.1:7020", "127.0.0.1:7030"], 1.5, "n1's join addresses")
        self.net.kill("127.0.0.1:7030")
        seen: dict[int, list[str]] = {1: [], 2: []}

        def dead():
            for viewer, history in seen.items():
                state = self.states(viewer, "n3")["state"]
                if not history or history[-1] != state:
                    history.append(state)
            return all(h[-1] == "dead" for h in seen.values())
        took = self.advanceUntil(dead, DETECTION_BOUND, "n3 dead in every view")
        for viewer, history in seen.items():
            self.assertEqual(history[0], "alive", viewer)
            self.assertIn("suspect", history, viewer)
            self.assertLess(history.index("suspect"), history.index("dead"), (viewer, history))
        # suspected after a failed probe, dead one suspicion timeout later
        self.assertGreaterEqual(took, 5 * 0.2)
        self.assertEqual(self.states(1, "n3")["lastChangeAgo"],
                         round(self.clock.seconds() - self.states(1, "n3")["lastChange"], 3))
        self.assertEqual(len(self.nodes[1].view()["members"]), 3)  # still a raft member

    def test_rolesFollowTheLeader(self):
        """A leader change is announced at once, not at the next refresh (1 s)."""
        self.threeMembers()
        self.table.leader = 2
        for node in self.nodes.values():
            node.leaderChanged(2, 2)
        self.advanceUntil(self.allAlive, 0.5, "the new roles in every view")
        self.assertEqual(self.states(3, "n2")["role"], "leader")
        self.assertEqual(self.states(3, "n1")["role"], "follower")

    def test_stoppedMemberLeft(self):
        """A member stopping leaves: the others see it ``left``, never suspect."""
        self.threeMembers()
        seen: set[str] = set()

        def left():
            states = [self.states(viewer, "n3")["state"] for viewer in (1, 2)]
            seen.update(states)
            return states == ["left", "left"]
        left()
        stopped: list[object] = []
        self.nodes[3].stopService().addBoth(stopped.append)
        self.advanceUntil(left, 5.0, "n3 left in every view")
        self.assertEqual(seen, {"alive", "left"})
        self.advanceUntil(lambda: stopped, 5.0, "n3 stopped")

    def test_addedMemberJoinedOnceUp(self):
        """
        A member added to the table before it runs: a join address of every
        member at their next refresh, ``unknown`` in the views; once it
        runs, alive in every view.
        """
        self.threeMembers()
        self.add(4, "n4", start=False)
        self.advanceUntil(lambda: all("127.0.0.1:7040" in n.cluster.joinAddresses
                                      for n in self.nodes.values()), 2.0, "n4 a join address")
        self.assertEqual(self.states(1, "n4"), {"state": "unknown"})
        self.clock.advance(3.0)
        self.start(4)
        self.advanceUntil(self.allAlive, 5.0, "n4 alive in every view")


class _Outsider:
    """A ``ClusterGossip`` that is no raft member, joining over HTTP/2 (TLS when given)."""

    def __init__(self, testCase, contextFactory=None, name="outsider"):
        # It does not listen: members that learn of it probe it in vain.
        self.gossip = ClusterGossip(
            reactor, name, 0x99, ["http://127.0.0.1:1"], "follower",
            transport=CkitTransport(reactor, "127.0.0.1:1", contextFactory=contextFactory),
            # a refused join over HTTP/2 may be a stream never answered: give up soon
            config=ckitConfig(name, probeInterval=0.2, probeTimeout=0.1, gossipInterval=0.05,
                              tcpTimeout=1.0),
            rejoinInterval=0)
        self.gossip.startService()
        testCase.addCleanup(self.stop)

    def stop(self):
        if self.gossip.running:
            return self.gossip.stopService()

    async def join(self, address):
        """Join ``host:port``: how many answered, or the ``JoinError``."""
        await self.gossip.node.whenRunning()
        try:
            return await self.gossip.node.start([address])
        except JoinError as e:
            return e


class NodeGossipTests(ClusterCase):
    """Three members in this process, gossiping fast."""

    options = dict(FAST, **GOSSIP)

    async def gossipView(self, node, via=None):
        """``GET /cluster/gossip`` on ``via``'s URL (``node``'s by default)."""
        code, body, headers = await self.request(b"GET", via or node, "/cluster/gossip")
        self.assertEqual((code, headers.getRawHeaders(b"content-type")),
                         (200, [b"application/json"]), body)
        return json.loads(body)

    def converged(self, nodes=None, states=("alive",)):
        """Does every running node see every node, in one of ``states``, with its role?"""
        nodes = [n for n in (nodes or self.nodes) if n.running]
        for node in nodes:
            rows = {r["name"]: r for r in node.nodeGossip.view()["members"]}
            for other in nodes:
                row = rows.get(other.config.name)
                if row is None or row["gossip"]["state"] not in states \
                        or row["gossip"].get("role") != other.etcd.role():
                    return False
        return True

    async def waitConverged(self, nodes=None):
        await waitFor(reactor, lambda: self.converged(nodes), timeout=20,
                      what="every member alive in every view, with its role")

    async def test_everyMemberAliveWithRoleAndID(self):
        """
        ``GET /cluster/gossip`` on every member: the three raft members,
        each with its ID, URLs and raft state, alive in gossip with the
        role, ID and client URLs it announced, a ckit participant; the
        leader's view carries raft progress; the settings are the flags'.
        """
        await self.startCluster()
        await self.waitConverged()
        leader = self.leaderOf()
        byName = {n.config.name: n for n in self.nodes}
        for node in self.nodes:
            view = await self.gossipView(node)
            self.assertEqual((view["name"], view["memberID"], view["leader"]),
                             (node.config.name, "%x" % (node.id,), "%x" % (leader.id,)))
            self.assertEqual(view["gossip"], {
                "enabled": True, "running": True, "problem": None, "profile": "lan",
                "address": "127.0.0.1:%d" % (self.ports[self.nodes.index(node)].getHost().port,),
                "probeInterval": 0.2, "probeTimeout": 0.1, "gossipInterval": 0.05,
                "suspicionMult": 5, "rejoinInterval": 1.0})
            self.assertEqual([r["name"] for r in view["members"]],
                             [n.config.name for n in sorted(self.nodes, key=lambda n: n.id)])
            for row in view["members"]:
                other = byName[row["name"]]
                url = urlOf(self.ports[self.nodes.index(other)])
                self.assertEqual(
                    (row["id"], row["inRaft"], row["isSelf"], row["peerURLs"], row["isLeader"],
                     row["isLearner"]),
                    ("%x" % (other.id,), True, other is node, [url], other is leader, False))
                gossip = row["gossip"]
                self.assertEqual((gossip["state"], gossip["role"], gossip["ckitState"],
                                  gossip["address"]),
                                 ("alive", "leader" if other is leader else "follower",
                                  "participant", url[len("http://"):]))
                self.assertLessEqual(gossip["lastChange"], reactor.seconds())
                self.assertEqual("match" in row, node is leader)
        # A client reaches it on the shared URL; the member table is raft's.
        # (in the member table's order, or the initial cluster's before it is filled)
        self.assertEqual(sorted(leader.nodeGossip.cluster.joinAddresses),
                         sorted(urlOf(self.ports[self.nodes.index(n)])[len("http://"):]
                                for n in self.nodes if n is not leader))

    async def crash(self, node):
        """
        kill -9 in this process: the port refuses new connections, the
        gossip transport answers 503 and sends nothing (no goodbye), then
        the node stops.
        """
        port = self.ports[self.nodes.index(node)]
        port.lateFactory.target.doStop()
        port.lateFactory.target = None
        await node.gossip.shutdown()
        await stopNode(node)

    async def test_crashedMemberSuspectThenDead(self):
        """
        A member stopped abruptly: each other member sees it suspect, then
        dead, within the configured timeouts; the member table keeps it
        (gossip never changes raft membership), and so does
        ``/cluster/members``.
        """
        await self.startCluster()
        await self.waitConverged()
        victim = [n for n in self.nodes if not n.isLeader][0]
        survivors = [n for n in self.nodes if n is not victim]
        ids = sorted(n.id for n in self.nodes)
        crashedAt = reactor.seconds()
        await self.crash(victim)
        seen = {n.config.name: [] for n in survivors}

        def record():
            for node in survivors:
                state = gossipOf(node.nodeGossip.view(), victim.config.name)["state"]
                history = seen[node.config.name]
                if not history or history[-1] != state:
                    history.append(state)
            return all(h[-1] == "dead" for h in seen.values())
        await waitFor(reactor, record, timeout=DETECTION_BOUND,
                      what="the crashed member dead in every view")
        for name, history in seen.items():
            self.assertIn("suspect", history, name)
            self.assertLess(history.index("suspect"), history.index("dead"), (name, history))
        for node in survivors:
            view = await self.gossipView(node)
            gossip = gossipOf(view, victim.config.name)
            self.assertGreater(gossip["lastChange"], crashedAt)
            self.assertEqual([r["inRaft"] for r in view["members"]], [True] * 3)
            self.assertEqual(node.members.ids(), ids)
            code, body, _ = await self.request(b"GET", node, "/cluster/members")
            self.assertEqual(sorted(int(m["id"], 16) for m in json.loads(body)["members"]), ids)

    async def test_rolesFollowLeadership(self):
        """A leadership transfer: every view shows the new leader's role as gossiped."""
        await self.startCluster()
        await self.waitConverged()
        leader = self.leaderOf()
        target = [n for n in self.nodes if n is not leader][0]
        await leader.etcd.moveLeader(target.id)
        await waitFor(reactor, lambda: self.leaderOf() is target, what="the new leader")
        await self.waitConverged()
        for node in self.nodes:
            view = node.nodeGossip.view()
            self.assertEqual(gossipOf(view, target.config.name)["role"], "leader")
            self.assertEqual(gossipOf(view, leader.config.name)["role"], "follower")

    async def test_joinAddressesFollowTheMemberTable(self):
        """
        A member added to the table (a learner, never started) becomes a join
        address of every member and a raft row gossip has never heard of;
        removed, it is neither.
        """
        await self.startCluster()
        await self.waitConverged()
        leader = self.leaderOf()
        newURL = "http://127.0.0.1:1"
        member, _ = await leader.etcd.addMember([newURL], True, "n4")
        await waitFor(reactor, lambda: all(
            "127.0.0.1:1" in n.nodeGossip.cluster.joinAddresses for n in self.nodes),
            what="the new member's address joined")
        row = [r for r in (await self.gossipView(leader))["members"] if r["id"] == "%x" % (
            member.ID,)][0]
        self.assertEqual((row["inRaft"], row["isLearner"], row["gossip"]),
                         (True, True, {"state": "unknown"}))
        await leader.etcd.removeMember(member.ID)
        await waitFor(reactor, lambda: not any(
            "127.0.0.1:1" in n.nodeGossip.cluster.joinAddresses for n in self.nodes),
            what="the removed member's address dropped")

    async def test_gossipOnlyMemberNeverJoinsRaft(self):
        """
        A gossip member that is no raft member shows as ``inRaft`` false,
        with what it announced; the member table does not change.
        """
        await self.startCluster()
        await self.waitConverged()
        ids = sorted(n.id for n in self.nodes)
        outsider = _Outsider(self)
        port = self.ports[0].getHost().port
        self.assertEqual(await outsider.join("127.0.0.1:%d" % (port,)), 1)

        def seen():
            return all(gossipOf(n.nodeGossip.view(), "outsider") is not None
                       for n in self.nodes)
        await waitFor(reactor, seen, what="the outsider in every view")
        for node in self.nodes:
            view = await self.gossipView(node)
            row = view["members"][-1]
            self.assertEqual((row["name"], row["inRaft"], row["id"], row["clientURLs"]),
                             ("outsider", False, "99", ["http://127.0.0.1:1"]))
            self.assertEqual(node.members.ids(), ids)

    async def test_removedMemberLeaves(self):
        """
        A member removed from the cluster leaves gossip: the others see it
        ``left``, no longer a raft member.
        """
        await self.startCluster()
        await self.waitConverged()
        leader = self.leaderOf()
        victim = [n for n in self.nodes if n is not leader][0]
        await leader.etcd.removeMember(victim.id)
        survivors = [n for n in self.nodes if n is not victim]

        def left():
            for node in survivors:
                rows = [r for r in node.nodeGossip.view()["members"]
                        if r["name"] == victim.config.name]
                if not rows or rows[0]["inRaft"] or rows[0]["gossip"]["state"] != "left":
                    return False
            return True
        await waitFor(reactor, left, what="the removed member left")
        await waitFor(reactor, lambda: not victim.nodeGossip.gossipRunning,
                      what="the removed member's gossip stopped")
        self.assertTrue(victim.gossip.shutDown)

    async def test_gossipOff(self):
        """``--gossip-profile off``: the view says so; every member's gossip is unknown."""
        await self.startCluster(**{"gossip-profile": "off"})
        view = await self.gossipView(self.nodes[0])
        self.assertEqual((view["gossip"]["enabled"], view["gossip"]["running"],
                          view["gossip"]["problem"]),
                         (False, False, "off (--gossip-profile off)"))
        self.assertEqual([r["gossip"] for r in view["members"]], [{"state": "unknown"}] * 3)

    async def test_notFoundElsewhere(self):
        """Only ``GET /cluster/gossip``: other paths and methods get the API's errors."""
        await self.startCluster()
        node = self.nodes[0]
        for method, path, code in ((b"GET", "/cluster/gossip/x", 404),
                                   (b"GET", "/cluster/other", 404),
                                   (b"DELETE", "/cluster/gossip", 404)):
            got, body, _ = await self.request(method, node, path)
            self.assertEqual(got, code, (path, body))
            self.assertIn("error", json.loads(body))


class ProcessGossipTests(TestCase):
    """Three ``twistd raftmux`` processes gossiping fast; kill -9 of one."""

    timeout = 120

    async def view(self, cluster, name):
        code, body, _ = await cluster.request(name, "GET", "/cluster/gossip", timeout=5)
        self.assertEqual(code, 200, body)
        return json.loads(body)

    async def test_killNineSeenSuspectThenDead(self):
        """
        Every member sees the others alive; after kill -9 of a follower,
        the survivors see it suspect, then dead, within the configured
        timeouts; the member table keeps three members; and ``python -m
        raftmux.cluster status`` shows each member's gossip state.
        """
        cluster = LocalCluster.create(
            scratchDirectory(self), size=3, ports="auto", onePort=True, token="gossip-test",
            flags=["--heartbeat-interval", "50", "--election-timeout", "500"] + GOSSIP_FLAGS)
        self.addCleanup(cluster.stopAll)
        cluster.start()
        await cluster.waitHealthy(timeout=30)
        names = sorted(cluster.members)
        views = {}

        async def poll():
            for name in names:
                if cluster.members[name].running:
                    try:
                        views[name] = await self.view(cluster, name)
                    except Exception:
                        views.pop(name, None)

        async def waitViews(predicate, what, timeout):
            deadline = reactor.seconds() + timeout
            while reactor.seconds() < deadline:
                await poll()
                if predicate():
                    return
            self.fail("timed out waiting for %s: %r" % (what, views))

        def allAlive():
            return len(views) == 3 and all(
                [gossipOf(v, n) and gossipOf(v, n)["state"] for n in names] == ["alive"] * 3
                for v in views.values())
        await waitViews(allAlive, "every member alive in every view", 30)
        leader = await cluster.leader()
        victim = [n for n in names if n != leader][0]
        ids = sorted(r["id"] for r in views[leader]["members"])
        await cluster.kill(victim)
        survivors = [n for n in names if n != victim]
        seen = {n: [] for n in survivors}

        def dead():
            for name in survivors:
                view = views.get(name)
                if view is None:
                    return False
                state = gossipOf(view, victim)["state"]
                if not seen[name] or seen[name][-1] != state:
                    seen[name].append(state)
            return all(seen[n] and seen[n][-1] == "dead" for n in survivors)
        await waitViews(dead, "the killed member dead in every view", DETECTION_BOUND)
        self.assertTrue(any("suspect" in h for h in seen.values()), seen)
        for name in survivors:
            self.assertEqual(sorted(r["id"] for r in views[name]["members"]), ids)
            self.assertTrue(all(r["inRaft"] for r in views[name]["members"]))
        supervisor = Supervisor(cluster, out=None)
        answer = await supervisor.command_status({})
        text = formatStatus(answer)
        lines = {line.split()[0]: line for line in text.splitlines()[1:]}
        self.assertIn("GOSSIP", text.splitlines()[0])
        self.assertRegex(lines[victim], r"\bdead \d+s\b")
        for name in survivors:
            self.assertRegex(lines[name], r"\balive\b")
        self.assertIn("(gossip as %s sees it)" % (answer["gossipFrom"],), text)
