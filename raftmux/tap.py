# -*- test-case-name: raftmux.test.test_tap -*-
"""
``twistd raftmux``: etcd's flags, and the service tree of one node.

``makeService(options)`` returns a ``MultiService`` holding the
``RaftNode``; compose it into your own application (see
``docs/examples/raftmux.tac``).  With no flags the node is a one-member
cluster on loopback: clients on http://127.0.0.1:2379, peers on
http://127.0.0.1:2380, data in ``default.etcd``.

As etcd does, a flag not given on the command line is read from
``ETCD_<FLAG>`` (``ETCD_INITIAL_CLUSTER``); the command line wins.
Under twistd, ``--log-level`` filters every log line (twistd's and
Twisted's too), and ``--logger zap`` writes one JSON object per line.
"""

from __future__ import annotations

import os
import platform
import signal
import sys
from collections.abc import Mapping
from typing import Any

from twisted.application import service
from twisted.application.app import ServerOptions
from twisted.copyright import version as twistedVersion
from twisted.logger import ILogObserver, Logger
from twisted.python import usage
from twisted.python.components import Componentized

import raftmux
from raftmux._log import ETCD_LEVELS, LEVELS, LOGGERS, levelFilter, setLogLevel, twistdObserver
from raftmux.node.config import (
    DEFAULTS,
    ConfigError,
    NodeConfig,
    envName,
    flagsFromEnvironment,
)
from raftmux.node.failure import exitOnStartFailure
from raftmux.node.service import RaftNode
from raftmux.tls import CLIENT, PEER, optFlags, optParameters

__all__ = ["Options", "makeService", "levelFilter", "shownDefault", "flagNames"]

log = Logger()

_FLAGS = [
    ("name", "human-readable name for this member"),
    ("data-dir", "path to the data directory"),
    ("listen-peer-urls", "URLs to listen on for peer traffic"),
    ("initial-advertise-peer-urls", "this member's peer URLs to advertise to the cluster"),
    ("listen-client-urls", "URLs to listen on for client traffic"),
    ("advertise-client-urls", "this member's client URLs to advertise to the cluster"),
    ("initial-cluster", "initial cluster configuration: name=peerURL,..."),
    ("initial-cluster-token", "initial cluster token, part of the member and cluster IDs"),
    ("initial-cluster-state", "'new' to bootstrap a cluster, 'existing' to join one"),
    ("heartbeat-interval", "time (in milliseconds) of a heartbeat interval"),
    ("election-timeout", "time (in milliseconds) for an election to time out"),
    ("snapshot-count", "applied entries between two snapshots of the key/value state"),
    ("snapshot-catchup-entries", "entries kept after a snapshot for slow followers"),
    ("max-request-bytes", "largest client request (etcd v3 API) in bytes"),
    ("max-value-bytes", "largest value a PUT may carry"),
    ("request-timeout", "seconds a write or linearizable read may take"),
    ("listen-metrics-urls", "URLs to listen on for /metrics and /health only"),
    ("logger", "log line format: " + " or ".join(LOGGERS) + " (zap: one JSON object a line)"),
    ("log-level", "log level: " + ", ".join(LEVELS + tuple(ETCD_LEVELS))),
    ("tls-watch-interval", "seconds between checks of the TLS files for changes (0: only "
                           "on SIGHUP)"),
    ("gossip-profile", "gossip timings over the peer port: lan, local or wan (memberlist's "
                       "defaults), or off"),
    ("gossip-probe-interval", "seconds between two probes of a member by gossip"),
    ("gossip-probe-timeout", "seconds a probed member has to answer"),
    ("gossip-interval", "seconds between two gossip rounds"),
    ("gossip-suspicion-mult", "how many probe intervals (scaled by cluster size) a suspect "
                              "member has to refute before it is declared dead"),
    ("gossip-rejoin-interval", "seconds between two joins of the other members and the "
                               "dead (heals partitions)"),
]
_TLS_PARAMETERS = optParameters(CLIENT) + optParameters(PEER)
_TLS_FLAGS = optFlags(CLIENT) + optFlags(PEER)

# Defaults that depend on other flags, as --help and docs/cli.md show them.
_SHOWN = {
    "data-dir": "<name>.etcd",
    "initial-cluster": "<name>=<initial-advertise-peer-urls>",
    "gossip-probe-interval": "<profile's>",
    "gossip-probe-timeout": "<profile's>",
    "gossip-interval": "<profile's>",
    "gossip-suspicion-mult": "<profile's>",
}


def shownDefault(flag: str) -> str | None:
    """A flag's default as ``--help`` shows it (None: no default)."""
    if flag in _SHOWN:
        return _SHOWN[flag]
    default = DEFAULTS.get(flag)
    return None if default is None else str(default)


def flagNames() -> list[str]:
    """Every flag of ``twistd raftmux``, in ``--help``'s order."""
    return [k for k, _ in _FLAGS] + [row[0] for row in _TLS_PARAMETERS + _TLS_FLAGS]


def _withDefault(flag: str, doc: str) -> str:
    # Parameters default to None so that a flag given on the command line
    # can be told from one that was not (which ETCD_<FLAG> may set); the
    # real default is shown in the help text instead.
    shown = shownDefault(flag)
    return doc if shown is None else "%s [default: %s]" % (doc, shown)


def _goBool(text: str) -> bool:
    """Go's ``strconv.ParseBool``, which etcd's boolean flags use."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(text)


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Run one member of a raftmux replicated key/value cluster. Flags have "
                "etcd's names and meanings; a flag not given is read from ETCD_<FLAG> "
                "(ETCD_INITIAL_CLUSTER for --initial-cluster). With no flags: a "
                "one-member cluster on http://127.0.0.1:2379 (clients) and "
                "http://127.0.0.1:2380 (peers).")
    optParameters = [[name, None, None, _withDefault(name, doc)] for name, doc in _FLAGS] \
        + _TLS_PARAMETERS
    optFlags = _TLS_FLAGS

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        usage.Options.__init__(self)
        self.environ = os.environ if environ is None else environ
        #: flag -> value taken from ``ETCD_<FLAG>``
        self.fromEnvironment: dict[str, str] = {}
        #: lines about ``ETCD_*`` variables that were not used
        self.environmentWarnings: list[str] = []

    def opt_version(self) -> None:
        """Display raftmux's version (and Twisted's and Python's) and exit."""
        print("raftmux Version: %s" % (raftmux.__version__,))
        print("Twisted Version: %s" % (twistedVersion,))
        print("Python Version: %s" % (platform.python_version(),))
        sys.exit(0)

    def postOptions(self) -> None:
        booleans = {row[0] for row in _TLS_FLAGS}
        names = flagNames()
        given = [k for k in names if (self[k] if k in booleans else self[k] is not None)]
        values, self.environmentWarnings = flagsFromEnvironment(self.environ, names, given)
        for flag, value in values.items():
            if flag in booleans:
                try:
                    self[flag] = _goBool(value)
                except ValueError:
                    raise usage.UsageError("invalid value %r for %s: not a boolean"
                                           % (value, envName(flag))) from None
            else:
                self[flag] = value
        self.fromEnvironment = values
        for flag in names:
            if self[flag] is None and DEFAULTS.get(flag) is not None:
                self[flag] = str(DEFAULTS[flag])
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


class _NodeServices(service.MultiService):
    """
    The node's services.  Given to twistd's application, it also says where
    the application logs: the observer twistd would have chosen, behind
    ``--log-level``'s filter, in ``--logger``'s format (twistd takes it
    from the application's ``ILogObserver``, unless ``twistd --logger``
    names one).
    """

    def __init__(self, options: Options) -> None:
        service.MultiService.__init__(self)
        self.options = options

    def setServiceParent(self, parent: Any) -> Any:
        twistd = getattr(self.options, "parent", None)
        if isinstance(parent, Componentized) and isinstance(twistd, ServerOptions) \
                and not twistd.get("logger") and parent.getComponent(ILogObserver) is None:
            config = self.options["config"]
            parent.setComponent(ILogObserver,
                                twistdObserver(twistd, config.logLevel, config.logger))
        return service.MultiService.setServiceParent(self, parent)


def makeService(options: Options, reactor: Any = None) -> service.MultiService:
    """The node of ``options["config"]`` in a ``MultiService``, ready for twistd."""
    if reactor is None:
        from twisted.internet import reactor
    config = options["config"]
    setLogLevel(config.logLevel)
    for flag, value in sorted(options.fromEnvironment.items()):
        log.info("raftmux: recognized and used environment variable {name}={value}",
                 name=envName(flag), value=value)
    for line in options.environmentWarnings:
        # (not "warning=": legacy observers take an event with that key for a Python warning)
        log.warn("raftmux: {line}", line=line)
    top = _NodeServices(options)
    # A node that cannot start stops twistd with exit status 1.
    node = RaftNode(config, reactor=reactor, onStartFailure=exitOnStartFailure(reactor))
    node.setServiceParent(top)
    if config.usesTLS:
        _ReloadOnHangup(node, reactor).setServiceParent(top)
    return top

