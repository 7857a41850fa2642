# -*- test-case-name: raftmux.test.test_etcd_services -*-
"""
The Cluster, Maintenance and Auth services (L{raftmux.etcd.cluster},
L{raftmux.etcd.maintenance}, L{raftmux.etcd.auth}) and the API's
dispatch by gRPC path (L{raftmux.etcd.api}), over the fake node.
"""

import hashlib

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from raftmux.etcd import IEtcdNode, IResponder, IStreamHandler
from raftmux.etcd.api import EtcdAPI
from raftmux.etcd.cluster import parsePeerURLs
from raftmux.etcd.maintenance import (
    CHUNK_SIZE,
    SnapshotFileError,
    readSnapshotFile,
    snapshotFile,
)
from raftmux.etcd.testing import FakeEtcdNode, FakeResponder
from raftmux.etcdpb import METHODS
from raftmux.etcdpb import rpc_pb2 as pb
from raftmux.mvcc import KeySpace, errors
from raftmux.mvcc.errors import Code
from raftmux.rafthttp.ids import memberID

T0 = 1700000000.0


class ServiceTestCase(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.node = FakeEtcdNode(self.clock)
        self.api = EtcdAPI(self.node, self.clock)
        self.api.startService()
        self.addCleanup(self.api.stopService)

    def ok(self, d):
        return self.successResultOf(d)

    def assertEtcdError(self, d, cls):
        failure = self.failureResultOf(d, errors.EtcdError)
        self.assertIsInstance(failure.value, cls)
        self.assertEqual((failure.value.code, failure.value.message), (cls.code, cls.message))
        return failure.value


class ClusterTests(ServiceTestCase):

    def test_list(self):
        resp = self.ok(self.api.cluster.MemberList(pb.MemberListRequest()))
        self.assertEqual(resp.header, pb.ResponseHeader(
            cluster_id=self.node.clusterID, member_id=self.node.memberID, raft_term=2))
        self.assertEqual([(m.ID, m.name) for m in resp.members],
                         [(self.node.memberID, "default")])

    def test_addLearner(self):
        """The new member as etcd answers it: ID, sorted URLs, learner flag."""
        resp = self.ok(self.api.cluster.MemberAdd(pb.MemberAddRequest(
            peerURLs=[" http://10.0.0.2:2380", "http://10.0.0.1:2380"], isLearner=True)))
        urls = ["http://10.0.0.1:2380", "http://10.0.0.2:2380"]
        self.assertEqual(resp.member, pb.Member(
            ID=memberID(urls, "", int(T0)), peerURLs=urls, isLearner=True))
        self.assertEqual(len(resp.members), 2)
        self.assertEqual(resp.header.revision, 0)
        self.assertEtcdError(self.api.cluster.MemberAdd(pb.MemberAddRequest(
            peerURLs=["http://10.0.0.9:2380"], isLearner=True)), errors.ErrTooManyLearners)
        e = self.assertEtcdError(self.api.cluster.MemberAdd(pb.MemberAddRequest(
            peerURLs=["http://10.0.0.1:2380"])), errors.ErrPeerURLExist)
        self.assertEqual((e.code, e.message),
                         (Code.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists"))
        promoted = self.ok(self.api.cluster.MemberPromote(pb.MemberPromoteRequest(
            ID=resp.member.ID)))
        self.assertFalse(any(m.isLearner for m in promoted.members))
        self.assertEtcdError(self.api.cluster.MemberPromote(pb.MemberPromoteRequest(
            ID=resp.member.ID)), errors.ErrMemberNotLearner)

    def test_badURLs(self):
        for urls in ([], ["ftp://a:1"], ["http://a"], ["http://a:1/path"], ["a:1"],
                     ["http://a b:1"]):
            e = self.assertEtcdError(self.api.cluster.MemberAdd(pb.MemberAddRequest(
                peerURLs=urls)), errors.ErrMemberBadURLs)
            self.assertEqual((e.code, e.message),
                             (Code.INVALID_ARGUMENT, "etcdserver: given member URLs are invalid"))

    def test_urlForms(self):
        self.assertEqual(parsePeerURLs(["https://[::1]:2380", "unix://sock:1", "HTTP://b:1"]),
                         ["http://b:1", "https://[::1]:2380", "unix://sock:1"])

    def test_removeUpdatePromoteErrors(self):
        for call, request in ((self.api.cluster.MemberRemove, pb.MemberRemoveRequest(ID=5)),
                              (self.api.cluster.MemberUpdate, pb.MemberUpdateRequest(ID=5)),
                              (self.api.cluster.MemberPromote, pb.MemberPromoteRequest(ID=5))):
            e = self.assertEtcdError(call(request), errors.ErrMemberNotFound)
            self.assertEqual((e.code, e.message), (Code.NOT_FOUND, "etcdserver: member not found"))
        e = self.assertEtcdError(self.api.cluster.MemberPromote(pb.MemberPromoteRequest(
            ID=self.node.memberID)), errors.ErrMemberNotLearner)
        self.assertEqual(e.message, "etcdserver: can only promote a learner member")

    def test_updateAndRemove(self):
        added = self.ok(self.api.cluster.MemberAdd(pb.MemberAddRequest(
            peerURLs=["http://10.0.0.1:2380"]))).member
        resp = self.ok(self.api.cluster.MemberUpdate(pb.MemberUpdateRequest(
            ID=added.ID, peerURLs=["http://10.0.0.3:2380"])))
        self.assertIn(["http://10.0.0.3:2380"], [list(m.peerURLs) for m in resp.members])
        resp = self.ok(self.api.cluster.MemberRemove(pb.MemberRemoveRequest(ID=added.ID)))
        self.assertEqual(len(resp.members), 1)


class MaintenanceTests(ServiceTestCase):

    def put(self, key, value=b"v"):
        self.ok(self.api.kv.Put(pb.PutRequest(key=key, value=value)))

    def test_status(self):
        self.put(b"a")
        resp = self.ok(self.api.maintenance.Status(pb.StatusRequest()))
        self.assertEqual((resp.version, resp.leader, resp.raftTerm), ("3.4.23", self.node.memberID, 2))
        self.assertEqual(resp.raftIndex, resp.raftAppliedIndex)
        self.assertEqual(resp.header.revision, 2)
        self.assertGreater(resp.dbSize, 0)
        self.assertEqual(list(resp.errors), [])

    def test_statusNoLeader(self):
        self.node.stepDown(0)
        resp = self.ok(self.api.maintenance.Status(pb.StatusRequest()))
        self.assertEqual(list(resp.errors), ["etcdserver: no leader"])
        self.assertEqual(resp.leader, 0)

    def test_hashes(self):
        self.put(b"a")
        h1 = self.ok(self.api.maintenance.Hash(pb.HashRequest()))
        kv = self.ok(self.api.maintenance.HashKV(pb.HashKVRequest()))
        self.assertEqual(kv.hash, self.node.keySpace.hashKV().hash)
        self.assertEqual((h1.header.revision, kv.header.revision), (2, 2))
        self.put(b"b")
        self.assertNotEqual(self.ok(self.api.maintenance.Hash(pb.HashRequest())).hash, h1.hash)
        self.assertEtcdError(self.api.maintenance.HashKV(pb.HashKVRequest(revision=9)),
                             errors.ErrFutureRev)

    def test_alarmAndDefragment(self):
        """etcd's answers to both carry no header."""
        self.assertEqual(self.ok(self.api.maintenance.Alarm(pb.AlarmRequest())),
                         pb.AlarmResponse())
        self.assertEqual(self.ok(self.api.maintenance.Alarm(pb.AlarmRequest(
            action=pb.AlarmRequest.DEACTIVATE, alarm=pb.NOSPACE))), pb.AlarmResponse())
        failure = self.failureResultOf(self.api.maintenance.Alarm(pb.AlarmRequest(
            action=pb.AlarmRequest.ACTIVATE, alarm=pb.NOSPACE)), errors.EtcdError)
        self.assertEqual(failure.value.code, Code.UNIMPLEMENTED)
        self.assertEqual(self.ok(self.api.maintenance.Defragment(pb.DefragmentRequest())),
                         pb.DefragmentResponse())

    def test_moveLeader(self):
        added = self.ok(self.api.cluster.MemberAdd(pb.MemberAddRequest(
            peerURLs=["http://10.0.0.1:2380"]))).member
        self.assertEtcdError(self.api.maintenance.MoveLeader(pb.MoveLeaderRequest(targetID=99)),
                             errors.ErrBadLeaderTransferee)
        self.assertEqual(self.ok(self.api.maintenance.MoveLeader(pb.MoveLeaderRequest(
            targetID=added.ID))), pb.MoveLeaderResponse())
        self.assertEqual(self.node.leader(), added.ID)
        e = self.assertEtcdError(self.api.maintenance.MoveLeader(pb.MoveLeaderRequest(
            targetID=added.ID)), errors.ErrNotLeader)
        self.assertEqual(e.message, "etcdserver: not leader")

    def test_snapshot(self):
        """etcd's chunks, the digest last, and a file etcdctl's length check accepts."""
        for i in range(300):
            self.put(b"key%04d" % (i,), b"x" * 200)
        expected = snapshotFile(self.node.keySpace.snapshot())
        r = FakeResponder()
        self.api.maintenance.Snapshot(pb.SnapshotRequest(), r)
        self.assertTrue(r.finished)
        self.assertIsNone(r.error)
        chunks = r.messages
        self.assertEqual([len(m.blob) for m in chunks[:-2]], [CHUNK_SIZE] * (len(chunks) - 2))
        data = b"".join(m.blob for m in chunks[:-1])
        self.assertEqual(data, expected)
        self.assertEqual([m.remaining_bytes for m in chunks],
                         [len(data) - min(len(data), CHUNK_SIZE * (i + 1))
                          for i in range(len(chunks) - 1)] + [0])
        self.assertEqual(chunks[-1].blob, hashlib.sha256(data).digest())
        whole = data + chunks[-1].blob
        self.assertEqual(len(whole) % 512, 32)
        restored = KeySpace()
        restored.restore(readSnapshotFile(whole))
        self.assertEqual(restored.hashKV().hash, self.node.keySpace.hashKV().hash)

    def test_snapshotPaced(self):
        """A paused client gets nothing more until it reads again."""
        for i in range(300):
            self.put(b"key%04d" % (i,), b"x" * 200)
        r = FakeResponder()
        real = r.sendMessage

        def sendAndPause(m):
            real(m)
            r.pause()

        r.sendMessage = sendAndPause
        stream = self.api.maintenance.Snapshot(pb.SnapshotRequest(), r)
        self.assertEqual(len(r.messages), 1)
        r.resume()
        self.assertEqual(len(r.messages), 2)
        stream.cancel()
        r.sendMessage = real
        stream.resumeProducing()
        self.assertEqual((len(r.messages), r.finished), (2, False))

    def test_snapshotFileDamage(self):
        whole = snapshotFile(b"abc")
        whole += hashlib.sha256(whole).digest()
        self.assertEqual(readSnapshotFile(whole), b"abc")
        for bad in (whole[:-1], whole[:-32] + b"\x00" * 32, b"", whole[:100] + whole[101:]):
            self.assertRaises(SnapshotFileError, readSnapshotFile, bad)


class AuthTests(ServiceTestCase):
    """Answers as etcd 3.4 gives them with auth disabled and no users."""

    def test_disabledAnswers(self):
        auth = self.api.auth
        e = self.assertEtcdError(auth.Authenticate(pb.AuthenticateRequest(name="root")),
                                 errors.ErrAuthNotEnabled)
        self.assertEqual((e.code, e.message),
                         (Code.FAILED_PRECONDITION, "etcdserver: authentication is not enabled"))
        self.assertEtcdError(auth.AuthEnable(pb.AuthEnableRequest()), errors.ErrRootUserNotExist)
        self.assertEqual(self.ok(auth.AuthDisable(pb.AuthDisableRequest())).header.member_id,
                         self.node.memberID)
        users = self.ok(auth.UserList(pb.AuthUserListRequest()))
        self.assertEqual((list(users.users), users.header.revision), ([], 1))
        self.assertEqual(list(self.ok(auth.RoleList(pb.AuthRoleListRequest())).roles), [])
        for call, request in ((auth.UserGet, pb.AuthUserGetRequest(name="u")),
                              (auth.UserDelete, pb.AuthUserDeleteRequest(name="u")),
                              (auth.UserChangePassword, pb.AuthUserChangePasswordRequest(name="u")),
                              (auth.UserGrantRole, pb.AuthUserGrantRoleRequest(user="u")),
                              (auth.UserRevokeRole, pb.AuthUserRevokeRoleRequest(name="u"))):
            self.assertEtcdError(call(request), errors.ErrUserNotFound)
        for call, request in ((auth.RoleGet, pb.AuthRoleGetRequest(role="r")),
                              (auth.RoleDelete, pb.AuthRoleDeleteRequest(role="r")),
                              (auth.RoleGrantPermission, pb.AuthRoleGrantPermissionRequest(name="r")),
                              (auth.RoleRevokePermission,
                               pb.AuthRoleRevokePermissionRequest(role="r"))):
            self.assertEtcdError(call(request), errors.ErrRoleNotFound)
        self.assertEtcdError(auth.UserAdd(pb.AuthUserAddRequest()), errors.ErrUserEmpty)
        self.assertEtcdError(auth.RoleAdd(pb.AuthRoleAddRequest()), errors.ErrRoleEmpty)
        failure = self.failureResultOf(auth.UserAdd(pb.AuthUserAddRequest(name="u")))
        self.assertEqual(failure.value.code, Code.UNIMPLEMENTED)

    def test_authenticateIsLinearizable(self):
        self.node.holdReads = True
        d = self.api.auth.Authenticate(pb.AuthenticateRequest(name="root"))
        self.assertNoResult(d)
        self.node.releaseReads()
        self.assertEtcdError(d, errors.ErrAuthNotEnabled)


class DispatchTests(ServiceTestCase):

    def test_everyMethodHasAHandler(self):
        """Every rpc of etcd's six services is answered by a service object."""
        self.assertEqual(len(METHODS), 39)
        for path in METHODS:
            self.assertIsNotNone(self.api.handler(path), path)
        self.assertIsNone(self.api.handler("/etcdserverpb.KV/Nope"))

    def test_callShapes(self):
        d = self.api.call("/etcdserverpb.KV/Put", pb.PutRequest(key=b"a", value=b"1"))
        self.assertEqual(self.ok(d).header.revision, 2)
        r = FakeResponder()
        handler = self.api.call("/etcdserverpb.Watch/Watch", responder=r)
        verifyObject(IStreamHandler, handler)
        handler.receive(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"a")))
        self.assertTrue(r.messages[0].created)
        r2 = FakeResponder()
        self.api.call("/etcdserverpb.Maintenance/Snapshot", pb.SnapshotRequest(), r2)
        self.assertTrue(r2.finished)

    def test_interfaces(self):
        verifyObject(IEtcdNode, self.node)
        verifyObject(IResponder, FakeResponder())

    def test_stopClosesStreams(self):
        r = FakeResponder()
        handler = self.api.watch.Watch(r)
        handler.receive(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"a")))
        self.api.stopService()
        self.assertEqual(self.api.watchHub.counts(), (0, 0))
        self.assertIsNone(r.producer)
        self.assertIsInstance(r.error, errors.ErrStopped)
        self.api.startService()

    def test_learnerStreamsRefused(self):
        self.node.setLearner(True)
        for path in ("/etcdserverpb.Watch/Watch", "/etcdserverpb.Lease/LeaseKeepAlive"):
            r = FakeResponder()
            self.api.call(path, responder=r)
            self.assertIsInstance(r.error, errors.ErrNotSupportedForLearner)
        r = FakeResponder()
        self.api.call("/etcdserverpb.Maintenance/Snapshot", pb.SnapshotRequest(), r)
        self.assertIsInstance(r.error, errors.ErrNotSupportedForLearner)
