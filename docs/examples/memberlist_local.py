"""
Three memberlist members on one machine (loopback, any free ports): they
join, see each other, pass a user broadcast around, and one leaves.

    python docs/examples/memberlist_local.py
"""

from twisted.internet import defer, task
from zope.interface import implementer

from raftmux.memberlist import (
    IDelegate,
    IEventDelegate,
    Memberlist,
    MemberlistConfig,
    SimpleBroadcast,
    TransmitLimitedQueue,
)


@implementer(IDelegate)
class Chat:
    """Node meta, and user broadcasts through a TransmitLimitedQueue."""

    def __init__(self, name):
        self.name = name
        self.received = []
        self.broadcasts = TransmitLimitedQueue(lambda: 3, retransmitMult=4)

    def nodeMeta(self, limit):
        return b"role=demo"

    def notifyMsg(self, data):
        print("%s got %r" % (self.name, data))
        self.received.append(data)

    def getBroadcasts(self, overhead, limit):
        return self.broadcasts.getBroadcasts(overhead, limit)

    def localState(self, join):
        return b""

    def mergeRemoteState(self, data, join):
        pass


@implementer(IEventDelegate)
class Printer:
    def __init__(self, name):
        self.name = name

    def notifyJoin(self, node):
        print("%s: %s joined at %s" % (self.name, node.name, node.address))

    def notifyLeave(self, node):
        print("%s: %s %s" % (self.name, node.name, node.state.name.lower()))

    def notifyUpdate(self, node):
        print("%s: %s updated" % (self.name, node.name))


async def waitFor(reactor, predicate, timeout):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await task.deferLater(reactor, 0.05)
    raise RuntimeError("gave up waiting")


async def main(reactor):
    members = []
    for name in ("alpha", "beta", "gamma"):
        # DefaultLocalConfig's timings; port 0 picks a free UDP+TCP port
        config = MemberlistConfig.local(name=name, bindAddr="127.0.0.1", bindPort=0)
        member = Memberlist(config, delegate=Chat(name), events=Printer(name), reactor=reactor)
        member.startService()
        await member.whenRunning()
        members.append(member)
    alpha, beta, gamma = members
    for member in (beta, gamma):
        await member.join([alpha.localNode.address])
    await waitFor(reactor, lambda: all(m.numMembers() == 3 for m in members), 10)
    print("3 members alive everywhere")

    gamma.delegate.broadcasts.queueBroadcast(SimpleBroadcast(b"hello from gamma"))
    await waitFor(reactor, lambda: alpha.delegate.received and beta.delegate.received, 10)
    await gamma.leave(5.0)
    await gamma.stopService()
    await waitFor(reactor, lambda: alpha.numMembers() == 2 and beta.numMembers() == 2, 10)
    for member in (alpha, beta):
        await member.stopService()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
