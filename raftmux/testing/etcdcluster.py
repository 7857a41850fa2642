# -*- test-case-name: raftmux.test.test_etcd_goclient -*-
"""
Three-member clusters for driving with etcd's own Go client
(``raftmux/test/go/etcdclient``): all raftmux members or all real etcd
3.4 members, started by ``raftmux.cluster.LocalCluster`` alike, and the
leader found the same way on both -- etcd's ``Maintenance.Status`` through
the JSON gateway, whose answer names the member asked (``header.member_id``)
and the leader it knows.
"""

import json

from twisted.internet import defer
from twisted.internet.task import deferLater

from raftmux.cluster import ClusterError, LocalCluster, planMembers

__all__ = ["KINDS", "grpcOnTheNode", "newCluster", "v3Leader"]

#: The systems a cluster can be made of.
KINDS = ("raftmux", "etcd")


def grpcOnTheNode():
    """
    Does this raftmux serve etcd's gRPC API on a member's client port?  The
    binding lives in ``raftmux.grpc``; a tree without it has only the JSON
    gateway, which etcd's Go client cannot use.
    """
    try:
        import raftmux.grpc.etcd  # noqa: F401
    except ImportError:
        return False
    return True


def newCluster(kind, directory, reactor=None, flags=(), size=3):
    """
    A ``LocalCluster`` (not started) of ``size`` members of ``kind``
    (``"raftmux"``: ``twistd raftmux`` on one port each; ``"etcd"``:
    /usr/bin/etcd), ports picked at random; ``flags`` go to every member.
    """
    if kind not in KINDS:
        raise ValueError("kind must be one of %s" % (KINDS,))
    prefix = "e" if kind == "etcd" else "n"
    names = ["%s%d" % (prefix, i + 1) for i in range(size)]
    members = planMembers(names=names, etcd=names if kind == "etcd" else (), ports="auto",
                          onePort=True)
    kwargs = {"flags": flags} if kind == "raftmux" else {"etcdFlags": flags}
    return LocalCluster(directory, members, token="etcdclient", reactor=reactor, **kwargs)


async def _status(cluster, name):
    try:
        code, body, _ = await cluster.request(name, "POST", "/v3/maintenance/status", "{}",
                                              timeout=2.0)
    except Exception:
        return None
    if code != 200:
        return None
    answer = json.loads(body)
    return answer.get("header", {}).get("member_id"), answer.get("leader")


async def v3Leader(cluster, timeout=30.0, interval=0.1):
    """
    The name of the running member every running member names as leader
    (``/v3/maintenance/status``), polled for at most ``timeout`` seconds.
    """
    reactor = cluster.reactor
    deadline = reactor.seconds() + timeout
    while True:
        running = cluster.running()
        answers = await defer.gatherResults(
            [defer.ensureDeferred(_status(cluster, m.name)) for m in running])
        if running and None not in answers:
            leaders = {leader for _, leader in answers}
            byID = {memberID: m.name for m, (memberID, _) in zip(running, answers, strict=True)}
            if len(leaders) == 1:
                (leader,) = leaders
                if leader in byID:
                    return byID[leader]
        if reactor.seconds() > deadline:
            raise ClusterError("no leader all running members agree on after %.0f s" % (
                timeout,))
        await deferLater(reactor, interval, lambda: None)
