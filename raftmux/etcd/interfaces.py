# -*- test-case-name: raftmux.test.test_etcd_services -*-
"""
The contracts between etcd's v3 API (this package) and what is around it.

``IEtcdNode`` is the narrow view the API has of a raft member: propose a
request and get its typed result, wait for a linearizable read point, read
the local key space, learn what was applied, who leads, and change
membership.  Nothing here knows about raft internals, dialers or drivers.

``IApplyObserver`` is what the node calls as it applies the log (the watch
hub and the lessor are observers).

``IResponder`` and ``IStreamHandler`` are the two halves of a streaming
RPC, shaped like a Twisted transport and its protocol: the transport
binding (gRPC on HTTP/2, or the JSON gateway) gives a responder; the
service gives back a handler.
"""

from collections import namedtuple

from zope.interface import Attribute, Interface

__all__ = [
    "IEtcdNode", "IApplyObserver", "IResponder", "IStreamHandler",
    "NodeStatus", "SERVER_VERSION",
]

#: What Status reports as ``version``: the etcd release the node presents as.
SERVER_VERSION = "3.4.23"


class NodeStatus(namedtuple("NodeStatus", (
        "leader raftIndex raftTerm raftAppliedIndex dbSize dbSizeInUse isLearner"))):
    """
    A member's raft status as etcd's Status rpc reports it: ``leader`` (0
    when none is known), ``raftIndex`` (the *committed* index, as etcd
    reports it), ``raftTerm``, ``raftAppliedIndex``, ``dbSize`` and
    ``dbSizeInUse`` (bytes of the state, the node's nearest equivalent),
    ``isLearner``.
    """


class IApplyObserver(Interface):
    """
    Called by the node, on the reactor thread, in log order.  Observers
    must not block and must not raise.
    """

    def applied(request, result):
        """
        ``request`` (an ``InternalRaftRequest``) was applied to the key
        space.  ``result`` is its L{raftmux.mvcc.Applied} (``events`` all of
        one revision), or None when applying it failed or it does not touch
        the key space.  Called right after the key space changed and before
        the next entry is applied, so ``keySpace`` reflects exactly the
        requests announced so far.
        """

    def restored():
        """The key space was replaced wholesale (a raft snapshot)."""

    def leadershipChanged(isLeader):
        """
        ``isLeader`` True: this member leads and has applied the first entry
        of its term (etcd promotes its lessor there, not at election).
        False: it stopped leading.  Called only on a change.
        """


class IEtcdNode(Interface):
    """What etcd's v3 API needs from a raft member."""

    memberID = Attribute("This member's ID (int, as in etcd's member list).")
    clusterID = Attribute("The cluster's ID (int).")
    keySpace = Attribute(
        "The local L{raftmux.mvcc.KeySpace}. The API reads it (serializable "
        "ranges, watch history, leases, hashes, snapshots) and never writes it.")

    def term():
        """The current raft term (int)."""

    def leader():
        """The leader's member ID, 0 when none is known."""

    def isLeader():
        """True when this member is the raft leader."""

    def isLearner():
        """True when this member is a learner (it then serves little)."""

    def propose(request):
        """
        Replicate ``request`` (an ``InternalRaftRequest`` whose
        ``header.ID`` is set and unique) and apply it.  A Deferred firing
        with the L{raftmux.mvcc.Applied} this member's key space gave when
        it applied the request, or failing with an
        L{raftmux.mvcc.errors.EtcdError}: the key space's own (e.g.
        ``ErrLeaseNotFound``), or the node's (``ErrTimeout``,
        ``ErrStopped``, ``ErrNoLeader``, ``ErrTimeoutDueToLeaderFail``...).
        """

    def readIndex():
        """
        etcd's linearizable read point: a Deferred firing (None) once this
        member's applied index has reached a read index the leader
        confirmed after this call, so a local read then sees every write
        acknowledged before the call.  Fails with ``ErrTimeout``,
        ``ErrLeaderChanged``, ``ErrStopped`` or ``ErrNoLeader``.
        """

    def waitApplied():
        """
        A Deferred firing once everything committed at the time of the call
        has been applied here (etcd's ``ApplyWait``); the lessor uses it
        before answering for a lease a client may have just granted.
        """

    def status():
        """A L{NodeStatus}."""

    def addObserver(observer):
        """Call ``observer`` (an L{IApplyObserver}) from now on."""

    def removeObserver(observer):
        """Stop calling ``observer``."""

    def members():
        """
        The member list as etcd's ``MemberList`` gives it: a list of
        ``etcdserverpb.Member`` (ID, name, peerURLs, clientURLs, isLearner).
        """

    def addMember(peerURLs, isLearner):
        """
        Add a member with these (validated, sorted) peer URLs.  A Deferred
        firing with ``(member, members)`` (the new ``Member`` with the ID the
        node chose, and the list after the change), or failing with
        ``ErrMemberExist``, ``ErrPeerURLExist``, ``ErrTooManyLearners``,
        ``ErrMemberNotEnoughStarted``, ``ErrTimeout``...
        """

    def removeMember(memberID):
        """
        A Deferred firing with the members after the change, or failing
        with ``ErrMemberNotFound``, ``ErrMemberNotEnoughStarted``...
        """

    def updateMember(memberID, peerURLs):
        """
        A Deferred firing with the members after the change, or failing
        with ``ErrMemberNotFound``, ``ErrPeerURLExist``...
        """

    def promoteMember(memberID):
        """
        Promote a learner.  A Deferred firing with the members after the
        change, or failing with ``ErrMemberNotFound``,
        ``ErrMemberNotLearner``, ``ErrMemberLearnerNotReady``...
        """

    def moveLeader(targetID):
        """
        Transfer leadership to ``targetID`` (called on the leader only).  A
        Deferred firing once it leads, or failing with
        ``ErrBadLeaderTransferee`` or a timeout error.
        """


class IResponder(Interface):
    """
    The transport side of one streaming RPC, as a Twisted transport is to a
    protocol: it takes response messages (an ``IConsumer``: a handler
    registers itself as a streaming producer to learn when to stop), and it
    produces request messages (an ``IPushProducer``: the handler pauses it
    when requests pile up).
    """

    def sendMessage(message):
        """Send one response message."""

    def finish(error=None):
        """
        End the RPC: OK when ``error`` is None, else an
        L{raftmux.mvcc.errors.EtcdError} (its code and message become the
        gRPC status).  Nothing may be sent afterwards.
        """

    def registerProducer(producer, streaming):
        """C{IConsumer.registerProducer}: pause/resume the handler's output."""

    def unregisterProducer():
        """C{IConsumer.unregisterProducer}."""

    def pauseProducing():
        """Stop delivering request messages to the handler for now."""

    def resumeProducing():
        """Deliver request messages again."""


class IStreamHandler(Interface):
    """The service side of one streaming RPC."""

    def receive(request):
        """One request message arrived."""

    def requestsDone():
        """The client half-closed: no more request messages."""

    def cancel():
        """The RPC is gone (client reset, connection lost): stop, send nothing."""
