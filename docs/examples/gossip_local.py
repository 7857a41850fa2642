"""
Three ckit members on one machine, over ckit's HTTP/2 gossip transport
(loopback, any free ports): they join, become participants, agree on who
owns a key, and one leaves.

    python docs/examples/gossip_local.py
"""

from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ServerEndpoint

from raftmux.ckit import CkitNode, Op, PeerState, ckitConfig, ring
from raftmux.memberlist import CkitTransport


def show(name):
    def observer(peers):
        print("%s sees %s" % (name, ", ".join("%s (%s)" % (p.name, p.state) for p in peers)))
        return True  # keep watching
    return observer


async def waitFor(reactor, predicate, timeout):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await task.deferLater(reactor, 0.05)
    raise RuntimeError("gave up waiting")


async def main(reactor):
    nodes = []
    for name in ("alpha", "beta", "gamma"):
        # ckit's HTTP/2 routes on a port of their own; port 0 picks a free one
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        transport = CkitTransport(reactor, "127.0.0.1:0", endpoint=endpoint)
        node = CkitNode(ckitConfig(name), transport, reactor=reactor, sharder=ring(256))
        node.observe(show(name))
        node.startService()
        await node.whenRunning()
        nodes.append(node)
    alpha, beta, gamma = nodes
    for node in (beta, gamma):
        await node.start([alpha.address])
    await waitFor(reactor, lambda: all(len(n.peers()) == 3 for n in nodes), 10)
    print("3 members everywhere")

    await defer.gatherResults([n.changeState(PeerState.PARTICIPANT) for n in nodes])
    await waitFor(reactor, lambda: all(p.state == PeerState.PARTICIPANT
                                       for n in nodes for p in n.peers()), 10)
    owners = {n.name: [p.name for p in n.lookup("some-key", 2, Op.READ_WRITE)] for n in nodes}
    print("owners of some-key:", owners)
    assert len({tuple(o) for o in owners.values()}) == 1

    await gamma.changeState(PeerState.TERMINATING)
    await gamma.stopService()  # leaves the cluster, then stops
    await waitFor(reactor, lambda: len(alpha.peers()) == 2 and len(beta.peers()) == 2, 10)
    print("gamma left")
    await defer.gatherResults([alpha.stopService(), beta.stopService()])


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
