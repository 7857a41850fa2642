# -*- test-case-name: raftmux.test.test_ckit_processes -*-
"""
Real peers: five ckit members, each its own process
(``python -m raftmux.ckit.runner``), over ckit's HTTP/2 transport on
loopback.  They converge; one killed with SIGKILL is detected (memberlist
marks it dead, ckit drops it from its peers) by every survivor; a state
change spreads; a graceful leave is seen as left.  Short timings (probe
0.2 s, suspicion multiplier 3); every wait polls with a deadline.
"""

import os

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from raftmux.test.test_memberlist_interop import waitUntil
from raftmux.testing.membership import MemberProcess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


class FiveProcessesTests(TestCase):
    timeout = 120

    def spawn(self, name, join=()):
        env = dict(os.environ, PYTHONPATH=ROOT)
        member = MemberProcess.spawn(reactor, name, join=join, env=env)
        self.members.append(member)
        return member

    def tearDown(self):
        waits = []
        for member in self.members:
            if not member.ended.called:
                member.kill()
                waits.append(member.ended)
        return defer.DeferredList(waits)

    @defer.inlineCallbacks
    def test_convergeKillDetectLeave(self):
        self.members = []
        seed = self.spawn("m0")
        yield waitUntil(lambda: seed.address, 30)
        for i in range(1, 5):
            self.spawn("m%d" % i, join=[seed.address])
        names = ["m%d" % i for i in range(5)]
        yield waitUntil(lambda: all(m.peerNames() == names for m in self.members), 60)

        seed.send("state participant")
        yield waitUntil(lambda: all(p["state"] == "participant" for m in self.members
                                    for p in m.peers if p["name"] == "m0"), 20)

        victim = self.members[4]
        victim.kill()
        exitCode = yield victim.ended
        self.assertIsNone(exitCode)  # killed by a signal
        survivors = self.members[:4]
        yield waitUntil(lambda: all(m.peerNames() == names[:4] for m in survivors), 30)
        for m in survivors:
            self.assertEqual(m.members["m4"], "dead")

        leaver = self.members[3]
        leaver.send("leave")
        self.assertEqual((yield leaver.ended), 0)
        yield waitUntil(lambda: all(m.peerNames() == names[:3] for m in survivors[:3]), 30)
        for m in survivors[:3]:
            self.assertEqual(m.members["m3"], "left")
        self.assertEqual(self.flushLoggedErrors(), [])
