# -*- test-case-name: raftmux.test.test_raft_readindex -*-
"""
Linearizable reads (etcd's ``read_only.go``).  In ``ReadOnlySafe`` mode the
leader notes its commit index for each request, sends a heartbeat carrying
the request's context, and answers once a quorum echoed that context: then
no other leader can have committed anything newer.  ``ReadOnlyLeaseBased``
trusts the leader lease (check-quorum) and answers at once.
"""

ReadOnlySafe = "ReadOnlySafe"
ReadOnlyLeaseBased = "ReadOnlyLeaseBased"


class ReadState:
    """A read that may be served once the applied index reaches ``index``."""

    __slots__ = ("index", "requestCtx")

    def __init__(self, index, requestCtx):
        self.index = index
        self.requestCtx = requestCtx

    def __eq__(self, other):
        if not isinstance(other, ReadState):
            return NotImplemented
        return (self.index, self.requestCtx) == (other.index, other.requestCtx)

    def __repr__(self):
        return "ReadState(index=%d, requestCtx=%r)" % (self.index, self.requestCtx)


class ReadIndexStatus:
    __slots__ = ("req", "index", "acks")

    def __init__(self, req, index):
        self.req = req
        self.index = index
        self.acks = set()


class ReadOnly:
    """Pending ReadIndex requests, in arrival order, keyed by context."""

    def __init__(self, option=ReadOnlySafe):
        self.option = option
        self.pendingReadIndex = {}
        self.readIndexQueue = []

    def addRequest(self, index, m):
        ctx = m.entries[0].Data
        if ctx in self.pendingReadIndex:
            return
        self.pendingReadIndex[ctx] = ReadIndexStatus(m, index)
        self.readIndexQueue.append(ctx)

    def recvAck(self, id, context):
        """Record that ``id`` echoed ``context``; the ackers so far (or empty)."""
        rs = self.pendingReadIndex.get(context)
        if rs is None:
            return set()
        rs.acks.add(id)
        return rs.acks

    def advance(self, m):
        """
        The requests answered by a quorum echo of ``m.context``: it and
        every request queued before it.
        """
        ctx = m.context
        try:
            i = self.readIndexQueue.index(ctx)
        except ValueError:
            return []
        done = self.readIndexQueue[:i + 1]
        del self.readIndexQueue[:i + 1]
        return [self.pendingReadIndex.pop(c) for c in done]

    def lastPendingRequestCtx(self):
        if not self.readIndexQueue:
            return None
        return self.readIndexQueue[-1]
