"""
``twistd raftmux``: etcd's flags, and the service tree of one node.

``makeService(options)`` returns a ``MultiService`` holding the
``RaftNode``; compose it into your own application (see
``docs/examples/raftmux.tac``).  With no flags the node is a one-member
cluster on loopback: clients on http://127.0.0.1:2379, peers on
http://127.0.0.1:2380, data in ``default.etcd``.
"""

import signal

from twisted.application import service
from twisted.logger import Logger
from twisted.python import usage

from raftmux._log import LEVELS, setLogLevel
from raftmux.node.config import DEFAULTS, ConfigError, NodeConfig
from raftmux.node.failure import exitOnStartFailure
from raftmux.node.service import RaftNode
from raftmux.tls import CLIENT, PEER, optFlags, optParameters

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
    ("tls-watch-interval", "seconds between checks of the TLS files for changes (0: only "
                           "on SIGHUP)"),
]
_TLS_PARAMETERS = optParameters(CLIENT) + optParameters(PEER)
_TLS_FLAGS = optFlags(CLIENT) + optFlags(PEER)


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Run one member of a raftmux replicated key/value cluster. Flags have "
                "etcd's names and meanings. With no flags: a one-member cluster on "
                "http://127.0.0.1:2379 (clients) and http://127.0.0.1:2380 (peers).")
    optParameters = [[name, None, None if DEFAULTS[name] is None else str(DEFAULTS[name]), doc]
                     for name, doc in _FLAGS] + _TLS_PARAMETERS
    optFlags = _TLS_FLAGS

    def postOptions(self):
        if self["log-level"] not in LEVELS:
            raise usage.UsageError("--log-level must be one of " + ", ".join(LEVELS))
        names = [k for k, _ in _FLAGS] + [row[0] for row in _TLS_PARAMETERS + _TLS_FLAGS]
        try:
            self["config"] = NodeConfig({k: self[k] for k in names})
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


class _ReloadOnHangup(service.Service):
    """SIGHUP re-reads the TLS files (certificate rotation without a restart)."""

    def __init__(self, node, reactor):
        self.node = node
        self.reactor = reactor
        self._previous = None

    def startService(self):
        service.Service.startService(self)
        self._previous = signal.signal(signal.SIGHUP, self._hangup)

    def stopService(self):
        service.Service.stopService(self)
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)

    def _hangup(self, signum, frame):
        log.info("raftmux: SIGHUP: reloading TLS files")
        self.reactor.callFromThread(self.node.reloadTLS)


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    setLogLevel(options["log-level"])
    top = service.MultiService()
    # A node that cannot start stops twistd with exit status 1.
    node = RaftNode(options["config"], reactor=reactor,
                    onStartFailure=exitOnStartFailure(reactor))
    node.setServiceParent(top)
    if options["config"].usesTLS:
        _ReloadOnHangup(node, reactor).setServiceParent(top)
    return top


__all__ = ["Options", "makeService"]
