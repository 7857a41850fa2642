# -*- test-case-name: raftmux.test.test_etcd_services -*-
"""
An in-process, single-member L{IEtcdNode} for tests of the API layer: it
applies proposals straight to a L{KeySpace}, counts raft indexes and
terms, keeps a member table with etcd's errors, and can be told to hold
proposals and reads, to fail them, or to lose or take leadership.
"""

import os
import shutil
import tempfile

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import deferLater
from zope.interface import implementer

from raftmux.etcd.interfaces import IEtcdNode, IResponder, NodeStatus
from raftmux.etcdpb import rpc_pb2
from raftmux.mvcc import KeySpace
from raftmux.mvcc.errors import (
    ErrBadLeaderTransferee,
    ErrMemberLearnerNotReady,
    ErrMemberNotFound,
    ErrMemberNotLearner,
    ErrPeerURLExist,
    ErrTooManyLearners,
    EtcdError,
)
from raftmux.rafthttp.ids import memberID as computeMemberID

__all__ = ["FakeEtcdNode", "FakeResponder", "startEtcd"]


@implementer(IEtcdNode)
class FakeEtcdNode:
    """
    ``clock`` is an ``IReactorTime`` (member IDs of added members use its
    time).  The node starts as the leader of a one-member cluster at term
    2, raft index 4, as a fresh etcd does, unless ``isLeader`` is False
    (then ``leaderID`` names the leader, 0 for none).

    Knobs for tests: ``holdProposals`` (proposals wait for
    L{applyPending}), ``proposalError`` (the next proposals fail with
    it, before anything is applied), ``holdReads`` (reads wait for
    L{releaseReads}), ``readError``, ``holdApplied`` (``waitApplied``
    waits for L{releaseApplied}), ``commitLag`` (committed entries not yet
    applied, as Status reports them), ``learnersReady``.
    """

    def __init__(self, clock, memberID=0x8E9E05C52164694D, clusterID=0xCDF818194E3A8C32,
                 name="default", peerURLs=("http://127.0.0.1:2380",),
                 clientURLs=("http://127.0.0.1:2379",), keySpace=None, isLeader=True,
                 leaderID=0, dbSize=None):
        self.clock = clock
        self.memberID = memberID
        self.clusterID = clusterID
        self.keySpace = keySpace if keySpace is not None else KeySpace()
        self._term = 2
        self._index = 4
        self._applied = 4
        self._leader = memberID if isLeader else leaderID
        self._observers = []
        self._members = {memberID: rpc_pb2.Member(
            ID=memberID, name=name, peerURLs=list(peerURLs), clientURLs=list(clientURLs))}
        self._dbSize = dbSize
        self.holdProposals = False
        self.proposalError = None
        self.holdReads = False
        self.readError = None
        self.learnersReady = True
        self.commitLag = 0
        self.holdApplied = False
        self._appliedWaiters = []
        self.proposed = []
        self._pending = []
        self._reads = []

    # -- raft state -----------------------------------------------------------

    def term(self):
        return self._term

    def leader(self):
        return self._leader

    def isLeader(self):
        return self._leader == self.memberID

    def isLearner(self):
        member = self._members.get(self.memberID)
        return bool(member is not None and member.isLearner)

    def setLearner(self, isLearner):
        self._members[self.memberID].isLearner = isLearner

    def status(self):
        size = self._dbSize if self._dbSize is not None else len(self.keySpace.snapshot())
        return NodeStatus(
            leader=self._leader, raftIndex=self._index + self.commitLag, raftTerm=self._term,
            raftAppliedIndex=self._applied, dbSize=size, dbSizeInUse=size,
            isLearner=self.isLearner())

    def becomeLeader(self):
        """Win an election: next term, apply the term's empty entry, promote."""
        was = self.isLeader()
        self._term += 1
        self._leader = self.memberID
        self._index += 1
        self._applied = self._index
        if not was:
            for o in list(self._observers):
                o.leadershipChanged(True)

    def stepDown(self, leaderID=0):
        """Lose leadership to ``leaderID`` (0: no leader known) in a new term."""
        was = self.isLeader()
        self._term += 1
        self._leader = leaderID
        if was:
            for o in list(self._observers):
                o.leadershipChanged(False)

    # -- observers ------------------------------------------------------------

    def addObserver(self, observer):
        self._observers.append(observer)

    def removeObserver(self, observer):
        if observer in self._observers:
            self._observers.remove(observer)

    # -- proposals and reads ----------------------------------------------------

    def propose(self, request):
        self.proposed.append(request)
        if self.proposalError is not None:
            return defer.fail(self.proposalError)
        self._index += 1
        d = defer.Deferred()
        if self.holdProposals:
            self._pending.append((request, d))
        else:
            self._apply(request, d)
        return d

    def applyPending(self):
        """Apply every held proposal, in order."""
        pending, self._pending = self._pending, []
        for request, d in pending:
            self._apply(request, d)

    def _apply(self, request, d):
        self._applied += 1
        self.keySpace.setConsistentIndex(self._applied)
        try:
            result = self.keySpace.apply(request)
        except EtcdError as e:
            for o in list(self._observers):
                o.applied(request, None)
            d.errback(e)
            return
        for o in list(self._observers):
            o.applied(request, result)
        d.callback(result)

    def restore(self, data):
        """Replace the key space from a snapshot, as a follower catching up does."""
        self.keySpace.restore(data)
        self._index += 1
        self._applied = self._index
        for o in list(self._observers):
            o.restored()

    def readIndex(self):
        if self.readError is not None:
            return defer.fail(self.readError)
        if self.holdReads:
            d = defer.Deferred()
            self._reads.append(d)
            return d
        return defer.succeed(None)

    def releaseReads(self):
        reads, self._reads = self._reads, []
        for d in reads:
            d.callback(None)

    def waitApplied(self):
        if self.holdApplied:
            d = defer.Deferred()
            self._appliedWaiters.append(d)
            return d
        return defer.succeed(None)

    def releaseApplied(self):
        waiters, self._appliedWaiters = self._appliedWaiters, []
        for d in waiters:
            d.callback(None)

    # -- membership -------------------------------------------------------------

    def members(self):
        return [rpc_pb2.Member.FromString(m.SerializeToString())
                for _, m in sorted(self._members.items())]

    def _urlInUse(self, urls, exceptID=None):
        for m in self._members.values():
            if m.ID != exceptID and set(m.peerURLs) & set(urls):
                return True
        return False

    def addMember(self, peerURLs, isLearner):
        if self._urlInUse(peerURLs):
            return defer.fail(ErrPeerURLExist())
        if isLearner and sum(m.isLearner for m in self._members.values()) >= 1:
            return defer.fail(ErrTooManyLearners())
        new = rpc_pb2.Member(
            ID=computeMemberID(peerURLs, "", int(self.clock.seconds())),
            peerURLs=list(peerURLs), isLearner=isLearner)
        self._members[new.ID] = new
        self._index += 1
        self._applied += 1
        return defer.succeed((new, self.members()))

    def removeMember(self, memberID):
        if memberID not in self._members:
            return defer.fail(ErrMemberNotFound())
        del self._members[memberID]
        self._index += 1
        self._applied += 1
        return defer.succeed(self.members())

    def updateMember(self, memberID, peerURLs):
        if memberID not in self._members:
            return defer.fail(ErrMemberNotFound())
        if self._urlInUse(peerURLs, exceptID=memberID):
            return defer.fail(ErrPeerURLExist())
        del self._members[memberID].peerURLs[:]
        self._members[memberID].peerURLs.extend(peerURLs)
        self._index += 1
        self._applied += 1
        return defer.succeed(self.members())

    def promoteMember(self, memberID):
        m = self._members.get(memberID)
        if m is None:
            return defer.fail(ErrMemberNotFound())
        if not m.isLearner:
            return defer.fail(ErrMemberNotLearner())
        if not self.learnersReady:
            return defer.fail(ErrMemberLearnerNotReady())
        m.isLearner = False
        self._index += 1
        self._applied += 1
        return defer.succeed(self.members())

    def moveLeader(self, targetID):
        target = self._members.get(targetID)
        if target is None or target.isLearner:
            return defer.fail(ErrBadLeaderTransferee())
        if targetID != self.memberID:
            self.stepDown(targetID)
        return defer.succeed(None)


@implementer(IResponder, IPushProducer)
class FakeResponder:
    """
    The transport side of a streaming rpc, in memory: ``messages`` sent,
    ``finished`` and ``error`` once finished, the registered ``producer``
    (L{pause} and L{resume} act on it as a slow client would), and
    ``inboundPaused`` while the handler holds requests back.
    """

    def __init__(self):
        self.messages = []
        self.finished = False
        self.error = None
        self.producer = None
        self.inboundPaused = False

    def sendMessage(self, message):
        if self.finished:
            raise AssertionError("message sent after finish: %r" % (message,))
        self.messages.append(message)

    def finish(self, error=None):
        if self.finished:
            raise AssertionError("finished twice")
        self.finished = True
        self.error = error

    def registerProducer(self, producer, streaming):
        if not streaming:
            raise AssertionError("only push producers are expected")
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def pauseProducing(self):
        self.inboundPaused = True

    def resumeProducing(self):
        self.inboundPaused = False

    def stopProducing(self):
        pass

    def pause(self):
        """The client stops reading: pause the handler's output."""
        self.producer.pauseProducing()

    def resume(self):
        """The client reads again."""
        self.producer.resumeProducing()

    def take(self):
        """The messages sent since the last call."""
        out, self.messages = self.messages, []
        return out


async def startEtcd(testCase, reactor, agent):
    """
    A one-member etcd 3.4 on loopback ports for ``testCase`` (skipped when
    the binary is missing), stopped and removed at its cleanup.  Returns
    ``(clientURL, peerURL)`` once ``/health`` says true.
    """
    from twisted.trial.unittest import SkipTest

    from raftmux.cluster import ETCD, freePort
    from raftmux.httpbody import readBody
    from raftmux.rafthttp.testing import LoggedProcess

    if not os.path.exists(ETCD):
        raise SkipTest("etcd 3.4 (%s) is not installed" % (ETCD,))
    directory = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    testCase.addCleanup(shutil.rmtree, directory, True)
    peer = "http://127.0.0.1:%d" % (freePort(),)
    client = "http://127.0.0.1:%d" % (freePort(),)
    logPath = os.path.join(directory, "etcd.log")
    log = open(logPath, "wb")
    testCase.addCleanup(log.close)
    etcd = LoggedProcess(log)
    process = reactor.spawnProcess(etcd, ETCD, [
        ETCD, "--name", "m", "--data-dir", os.path.join(directory, "m"),
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--initial-cluster", "m=%s" % (peer,)], env=dict(os.environ))
    testCase.addCleanup(lambda: etcd.ended)
    testCase.addCleanup(
        lambda: process.signalProcess("TERM") if process.pid is not None else None)
    for _ in range(200):
        try:
            response = await agent.request(b"GET", (client + "/health").encode())
            if b'"true"' in await readBody(response, 65536):
                return client, peer
        except Exception:
            pass
        await deferLater(reactor, 0.05, lambda: None)
    log.flush()
    with open(logPath, "rb") as f:
        raise AssertionError("etcd did not start:\n%s" % (f.read()[-3000:].decode(),))
