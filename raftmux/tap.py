"""
``twistd raftmux``: etcd's flags, and the service tree of one node.

``makeService(options)`` returns a ``MultiService`` holding the
``RaftNode``; compose it into your own application (see
``docs/examples/raftmux.tac``).  With no flags the node is a one-member
cluster on loopback: clients on http://127.0.0.1:2379, peers on
http://127.0.0.1:2380, data in ``default.etcd``.
"""

from twisted.application import service
from twisted.logger import Logger
from twisted.python import usage

from raftmux._log import LEVELS, setLogLevel
from raftmux.node.config import DEFAULTS, ConfigError, NodeConfig
from raftmux.node.service import RaftNode

log = Logger()

_FLAGS = [
    ("name", "human-readable name for this member"),
    ("data-dir", "path to the data directory (default: <name>.etcd)"),
    ("listen-peer-urls", "URLs to listen on for peer traffic"),
    ("initial-advertise-peer-urls", "this member's peer URLs to advertise to the cluster"),
    ("listen-client-urls", "URLs to listen on for client traffic"),
    ("advertise-client-urls", "this member's client URLs to advertise to the cluster"),
    ("initial-cluster", "initial cluster configuration: name=peerURL,... "
                        "(default: <name>=<initial-advertise-peer-urls>)"),
    ("initial-cluster-token", "initial cluster token, part of the member and cluster IDs"),
    ("initial-cluster-state", "'new' to bootstrap a cluster, 'existing' to join one"),
    ("heartbeat-interval", "time (in milliseconds) of a heartbeat interval"),
    ("election-timeout", "time (in milliseconds) for an election to time out"),
    ("snapshot-count", "applied entries between two snapshots of the key/value state"),
    ("snapshot-catchup-entries", "entries kept after a snapshot for slow followers"),
    ("max-value-bytes", "largest value a PUT may carry"),
    ("request-timeout", "seconds a write or linearizable read may take"),
    ("log-level", "log level: " + ", ".join(LEVELS)),
]


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Run one member of a raftmux replicated key/value cluster. Flags have "
                "etcd's names and meanings. With no flags: a one-member cluster on "
                "http://127.0.0.1:2379 (clients) and http://127.0.0.1:2380 (peers).")
    optParameters = [[name, None, None if DEFAULTS[name] is None else str(DEFAULTS[name]), doc]
                     for name, doc in _FLAGS]

    def postOptions(self):
        if self["log-level"] not in LEVELS:
            raise usage.UsageError("--log-level must be one of " + ", ".join(LEVELS))
        try:
            self["config"] = NodeConfig({k: self[k] for k, _ in _FLAGS})
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


class _Reporter(service.Service):
    """Stops twistd with a clear line when the node cannot start."""

    def __init__(self, node, reactor):
        self.node = node
        self.reactor = reactor

    def startService(self):
        service.Service.startService(self)

        def failed(f):
            log.critical("raftmux: stopping: {why}", why=f.getErrorMessage())
            if self.reactor.running:
                self.reactor.stop()
        self.node.whenStarted().addErrback(failed)


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    setLogLevel(options["log-level"])
    top = service.MultiService()
    node = RaftNode(options["config"], reactor=reactor)
    node.setServiceParent(top)
    _Reporter(node, reactor).setServiceParent(top)
    return top


__all__ = ["Options", "makeService"]
