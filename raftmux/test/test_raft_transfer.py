# -*- test-case-name: raftmux.test.test_raft_transfer -*-
"""
Leader transfer with MsgTransferLeader/MsgTimeoutNow (etcd raft_test.go's
TestLeaderTransfer* scenarios).
"""

from twisted.trial.unittest import SynchronousTestCase

from raftmux.raft.core import NONE, ProposalDropped, StateFollower, StateLeader
from raftmux.raftpb import (
    ConfChange,
    ConfChangeRemoveNode,
    ConfState,
    MsgAppResp,
    MsgHup,
    MsgTimeoutNow,
    MsgTransferLeader,
    MsgVote,
    MsgVoteResp,
)
from raftmux.test.test_raft_core import nextEnts, setRandomizedElectionTimeout
from raftmux.test.test_raft_network import Network, hup, msg, newTestRaft, prop


def transfer(frm, to):
    return msg(MsgTransferLeader, frm=frm, to=to)


class LeaderTransferTests(SynchronousTestCase):
    def checkState(self, r, state, lead):
        self.assertEqual((r.state, r.lead, r.leadTransferee), (state, lead, NONE))

    def _isolated3(self):
        nt = Network(None, None, None)
        nt.send(hup(1))
        nt.isolate(3)
        return nt, nt.peers[1]

    def test_toUpToDateNode(self):
        nt = Network(None, None, None)
        nt.send(hup(1))
        lead = nt.peers[1]
        self.assertEqual(lead.lead, 1)
        nt.send(transfer(2, 1))
        self.checkState(lead, StateFollower, 2)
        nt.send(prop(1))
        nt.send(transfer(1, 2))
        self.checkState(lead, StateLeader, 1)

    def test_toUpToDateNodeFromFollower(self):
        """The request may be sent to a follower, which forwards it."""
        nt = Network(None, None, None)
        nt.send(hup(1))
        lead = nt.peers[1]
        nt.send(transfer(2, 2))
        self.checkState(lead, StateFollower, 2)
        nt.send(prop(1))
        nt.send(transfer(1, 1))
        self.checkState(lead, StateLeader, 1)

    def test_withCheckQuorum(self):
        nt = Network(None, None, None, configure=lambda id: {"checkQuorum": True})
        for i in (1, 2, 3):
            setRandomizedElectionTimeout(nt.peers[i], nt.peers[i].electionTimeout + i)
        f = nt.peers[2]
        for _ in range(f.electionTimeout):
            f.tick()
        nt.send(hup(1))
        lead = nt.peers[1]
        self.assertEqual(lead.lead, 1)
        nt.send(transfer(2, 1))
        self.checkState(lead, StateFollower, 2)
        nt.send(prop(1))
        nt.send(transfer(1, 2))
        self.checkState(lead, StateLeader, 1)

    def test_toSlowFollower(self):
        nt, lead = self._isolated3()
        nt.send(prop(1))
        nt.recover()
        self.assertEqual(lead.prs.progress[3].match, 1)
        # 3 lacks an entry: the leader catches it up first, then MsgTimeoutNow.
        nt.send(transfer(3, 1))
        self.checkState(lead, StateFollower, 3)

    def test_afterSnapshot(self):
        nt, lead = self._isolated3()
        nt.send(prop(1))
        nextEnts(lead, nt.storage[1])
        nt.storage[1].createSnapshot(lead.raftLog.applied,
                                     ConfState(voters=sorted(lead.prs.voters)), b"")
        nt.storage[1].compact(lead.raftLog.applied)
        nt.recover()
        self.assertEqual(lead.prs.progress[3].match, 1)
        filtered = []

        def hook(m):
            # Hold 3's ack of the snapshot until it is "persisted".
            if m.type != MsgAppResp or getattr(m, "from") != 3 or m.reject:
                return True
            filtered.append(m)
            return False

        nt.msgHook = hook
        nt.send(transfer(3, 1))
        self.assertEqual(lead.state, StateLeader)
        self.assertEqual(len(filtered), 1)
        follower = nt.peers[3]
        snap = follower.raftLog.unstable.snapshot
        nt.storage[3].applySnapshot(snap)
        follower.raftLog.stableSnapTo(snap.metadata.index)
        nt.msgHook = None
        nt.send(filtered[0])
        self.checkState(lead, StateFollower, 3)

    def test_toSelf(self):
        nt = Network(None, None, None)
        nt.send(hup(1))
        lead = nt.peers[1]
        nt.send(transfer(1, 1))
        self.checkState(lead, StateLeader, 1)

    def test_toNonExistingNode(self):
        nt = Network(None, None, None)
        nt.send(hup(1))
        lead = nt.peers[1]
        nt.send(transfer(4, 1))
        self.checkState(lead, StateLeader, 1)

    def test_timeout(self):
        nt, lead = self._isolated3()
        nt.send(transfer(3, 1))
        self.assertEqual(lead.leadTransferee, 3)
        for _ in range(lead.heartbeatTimeout):
            lead.tick()
        self.assertEqual(lead.leadTransferee, 3)
        for _ in range(lead.electionTimeout - lead.heartbeatTimeout):
            lead.tick()
        self.checkState(lead, StateLeader, 1)

    def test_ignoreProposal(self):
        nt, lead = self._isolated3()
        nt.send(transfer(3, 1))
        self.assertEqual(lead.leadTransferee, 3)
        nt.send(prop(1))
        self.assertRaises(ProposalDropped, lead.step, prop(1))
        self.assertEqual(lead.prs.progress[1].match, 1)

    def test_receiveHigherTermVote(self):
        nt, lead = self._isolated3()
        nt.send(transfer(3, 1))
        self.assertEqual(lead.leadTransferee, 3)
        nt.send(msg(MsgHup, frm=2, to=2, index=1, term=2))
        self.checkState(lead, StateFollower, 2)

    def test_removeNode(self):
        nt = Network(None, None, None)
        nt.send(hup(1))
        nt.ignore(MsgTimeoutNow)
        lead = nt.peers[1]
        nt.send(transfer(3, 1))
        self.assertEqual(lead.leadTransferee, 3)
        lead.applyConfChange(ConfChange(type=ConfChangeRemoveNode, node_id=3))
        self.checkState(lead, StateLeader, 1)

    def test_back(self):
        nt, lead = self._isolated3()
        nt.send(transfer(3, 1))
        self.assertEqual(lead.leadTransferee, 3)
        nt.send(transfer(1, 1))
        self.checkState(lead, StateLeader, 1)

    def test_secondTransferToAnotherNode(self):
        nt, lead = self._isolated3()
        nt.send(transfer(3, 1))
        self.assertEqual(lead.leadTransferee, 3)
        nt.send(transfer(2, 1))
        self.checkState(lead, StateFollower, 2)

    def test_secondTransferToSameNode(self):
        """A repeated request does not restart the transfer's timeout."""
        nt, lead = self._isolated3()
        nt.send(transfer(3, 1))
        self.assertEqual(lead.leadTransferee, 3)
        for _ in range(lead.heartbeatTimeout):
            lead.tick()
        nt.send(transfer(3, 1))
        for _ in range(lead.electionTimeout - lead.heartbeatTimeout):
            lead.tick()
        self.checkState(lead, StateLeader, 1)

    def test_transferNonMember(self):
        r = newTestRaft(1, [2, 3, 4], 5, 1)
        r.step(msg(MsgTimeoutNow, frm=2, to=1))
        r.step(msg(MsgVoteResp, frm=2, to=1))
        r.step(msg(MsgVoteResp, frm=3, to=1))
        self.assertEqual(r.state, StateFollower)

    def test_timeoutNowCampaignsWithTransferContext(self):
        """The transferee campaigns at once, without pre-vote, marking its votes as forced."""
        r = newTestRaft(2, [1, 2, 3], preVote=True)
        r.becomeFollower(1, 1)
        r.step(msg(MsgTimeoutNow, frm=1, to=2, term=1))
        msgs = r.readMessages()
        self.assertEqual(sorted((m.type, m.to, m.term, m.context) for m in msgs),
                         [(MsgVote, 1, 2, b"CampaignTransfer"), (MsgVote, 3, 2, b"CampaignTransfer")])
