# A raftmux node inside your own Twisted application.
#
#   twistd -ny docs/examples/raftmux.tac
#
# The node is an ordinary IService: put it in a MultiService beside your own
# services.  Here a small LoopingCall service reports the node's leader.
# exitOnStartFailure(): a node that cannot start (a port taken, a damaged
# log) stops the process with exit status 1, as `twistd raftmux` does,
# rather than leaving it running without its node.

from twisted.application import internet, service
from twisted.logger import Logger

from raftmux.node import NodeConfig, RaftNode, exitOnStartFailure

log = Logger()

application = service.Application("raftmux-example")
top = service.MultiService()
top.setServiceParent(application)

config = NodeConfig({
    "name": "example",
    "data-dir": "example.etcd",
    "listen-peer-urls": "http://127.0.0.1:2380",
    "initial-advertise-peer-urls": "http://127.0.0.1:2380",
    "listen-client-urls": "http://127.0.0.1:2379",
    "advertise-client-urls": "http://127.0.0.1:2379",
})
node = RaftNode(config, onStartFailure=exitOnStartFailure())
node.setServiceParent(top)


def report():
    log.info("example: leader is {leader:x}, key space at revision {revision}",
             leader=node.leader,
             revision=node.keySpace.revision if node.keySpace is not None else 0)


internet.TimerService(10, report).setServiceParent(top)
