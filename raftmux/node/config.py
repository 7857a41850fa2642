# -*- test-case-name: raftmux.test.test_tap -*-
"""
A node's configuration with etcd's flag names, defaults and checks, and the
member and cluster IDs etcd would compute from it (spec 11.1, 11.2).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from raftmux._log import LOGGERS, canonicalLevel
from raftmux.memberlist.config import MemberlistConfig
from raftmux.rafthttp import clusterID, memberID
from raftmux.tls import CLIENT, PEER, TLSConfigError, TLSInfo, checkURLs

__all__ = ["ConfigError", "NodeConfig", "GossipOptions", "GOSSIP_PROFILES", "parseURLs", "parseInitialCluster", "addressOf",
           "DEFAULTS", "ETCD_FLAGS", "ENV_PREFIX", "envName", "flagsFromEnvironment"]

# etcd 3.4's defaults, but the loopback addresses (127.0.0.1 where etcd
# says localhost) and the flags etcd does not have (see ETCD_FLAGS).
DEFAULTS: dict[str, Any] = {
    "name": "default",
    "data-dir": None,  # "<name>.etcd", as etcd
    "listen-peer-urls": "http://127.0.0.1:2380",
    "initial-advertise-peer-urls": "http://127.0.0.1:2380",
    "listen-client-urls": "http://127.0.0.1:2379",
    "advertise-client-urls": "http://127.0.0.1:2379",
    "initial-cluster": None,  # "<name>=<initial-advertise-peer-urls>"
    "initial-cluster-token": "etcd-cluster",
    "initial-cluster-state": "new",
    "heartbeat-interval": 100,
    "election-timeout": 1000,
    "snapshot-count": 100000,
    "snapshot-catchup-entries": 5000,
    "max-request-bytes": 1536 * 1024,
    "max-value-bytes": 1024 * 1024,
    "request-timeout": 5.0,
    "listen-metrics-urls": None,
    "logger": "capnslog",
    "log-level": "info",
    "tls-watch-interval": 0,
    "gossip-profile": "lan",
    "gossip-probe-interval": None,  # the profile's
    "gossip-probe-timeout": None,
    "gossip-interval": None,
    "gossip-suspicion-mult": None,
    "gossip-rejoin-interval": 30.0,
}

# The flags that are etcd 3.4's, with its names, defaults and meanings
# (the others are raftmux's own).  A test holds this list against
# ``etcd --help``.
ETCD_FLAGS = frozenset([
    "name", "data-dir", "listen-peer-urls", "initial-advertise-peer-urls",
    "listen-client-urls", "advertise-client-urls", "initial-cluster",
    "initial-cluster-token", "initial-cluster-state", "heartbeat-interval",
    "election-timeout", "snapshot-count", "max-request-bytes", "listen-metrics-urls",
    "logger", "log-level",
    "cert-file", "key-file", "trusted-ca-file", "client-cert-auth",
    "peer-cert-file", "peer-key-file", "peer-trusted-ca-file", "peer-client-cert-auth",
    "peer-cert-allowed-cn", "peer-cert-allowed-hostname",
])

#: etcd reads a flag it was not given from ``ETCD_<FLAG>``.
ENV_PREFIX = "ETCD"

SCHEMES = ("http", "https")


#: ``--gossip-profile``: memberlist's default configurations, or no gossip
GOSSIP_PROFILES = {"lan": MemberlistConfig.lan, "local": MemberlistConfig.local,
                   "wan": MemberlistConfig.wan, "off": None}


@dataclass(frozen=True)
class GossipOptions:
    """
    The ``--gossip-*`` flags: a ``profile`` (memberlist's ``lan``,
    ``local`` or ``wan`` timings, or ``off``) and the timings given over
    it (None: the profile's), in seconds.
    """

    profile: str = "lan"
    probeInterval: float | None = None
    probeTimeout: float | None = None
    gossipInterval: float | None = None
    suspicionMult: int | None = None
    rejoinInterval: float = 30.0

    @property
    def enabled(self) -> bool:
        return self.profile != "off"

    def memberlistConfig(self, **values: Any) -> MemberlistConfig:
        """The profile's ``MemberlistConfig`` with the given timings and ``values``."""
        make = GOSSIP_PROFILES[self.profile] or MemberlistConfig.lan
        for key in ("probeInterval", "probeTimeout", "gossipInterval", "suspicionMult"):
            if getattr(self, key) is not None:
                values.setdefault(key, getattr(self, key))
        return make(**values)


class ConfigError(ValueError):
    """A flag or a combination of flags that cannot work; the message says which."""


def envName(flag: str) -> str:
    """``"initial-cluster"`` -> ``"ETCD_INITIAL_CLUSTER"`` (etcd's ``flags.FlagToEnv``)."""
    return ENV_PREFIX + "_" + flag.upper().replace("-", "_")


def flagsFromEnvironment(environ: Mapping[str, str], flags: Iterable[str],
                         given: Iterable[str] = ()) -> tuple[dict[str, str], list[str]]:
    """
    etcd's environment: ``ETCD_<FLAG>`` sets a flag that was not ``given``
    on the command line (an empty variable sets nothing).  Returns the
    values taken and a line for each variable that was not: shadowed by
    its flag (etcd 3.4 refuses to start there; the flag wins here) or not
    naming a flag.
    """
    flags = list(flags)
    given = set(given)
    byName = {envName(flag): flag for flag in flags}
    values: dict[str, str] = {}
    notes: list[str] = []
    for key in sorted(environ):
        if not key.startswith(ENV_PREFIX + "_"):
            continue
        flag = byName.get(key)
        if flag is None:
            notes.append("unrecognized environment variable %s" % (key,))
        elif flag in given:
            notes.append("environment variable %s is shadowed by --%s: the flag wins"
                         % (key, flag))
        elif environ[key] != "":
            values[flag] = environ[key]
    return values, notes


def addressOf(url: str) -> tuple[str | None, int | None]:
    """``"http://127.0.0.1:2380"`` -> ``("127.0.0.1", 2380)``."""
    parts = urlsplit(url)
    return parts.hostname, parts.port


def parseURLs(text: str | None, flag: str) -> list[str]:
    """
    ``"http://a:1,http://b:2"`` -> normalized URL strings (what Go's
    ``url.URL.String()`` gives for them), checked as etcd checks them.
    """
    urls = []
    for raw in (text or "").split(","):
        raw = raw.strip()
        if not raw:
            continue
        try:
            parts = urlsplit(raw)
            port = parts.port
        except ValueError as e:
            raise ConfigError("--%s: %r is not a URL (%s)" % (flag, raw, e)) from None
        if parts.scheme not in SCHEMES:
            raise ConfigError("--%s: URL scheme must be http or https: %r" % (flag, raw))
        if not parts.hostname or port is None:
            raise ConfigError("--%s: URL must name a host and a port: %r" % (flag, raw))
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError("--%s: URL must not have a path: %r" % (flag, raw))
        urls.append("%s://%s" % (parts.scheme, parts.netloc))
    if not urls:
        raise ConfigError("--%s needs at least one URL" % (flag,))
    return urls


def parseInitialCluster(text: str | None) -> dict[str, list[str]]:
    """``"n1=http://a:1,n1=http://a:2,n2=..."`` -> ``{name: [urls]}`` (order kept)."""
    cluster: dict[Any, Any] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise ConfigError("--initial-cluster: expected name=URL, got %r" % (item,))
        cluster.setdefault(name, []).extend(parseURLs(url, "initial-cluster"))
    if not cluster:
        raise ConfigError("--initial-cluster is empty")
    return cluster


def _positive(options, flag, kind=int):
    try:
        value = kind(options[flag])
    except (TypeError, ValueError):
        raise ConfigError("--%s must be a number, got %r" % (flag, options[flag])) from None
    if value <= 0:
        raise ConfigError("--%s must be positive" % (flag,))
    return value


def _gossipOptions(o):
    profile = o["gossip-profile"]
    if profile not in GOSSIP_PROFILES:
        raise ConfigError("--gossip-profile must be one of %s, got %r"
                          % (", ".join(GOSSIP_PROFILES), profile))
    given = {}
    for flag, key, kind in (("gossip-probe-interval", "probeInterval", float),
                            ("gossip-probe-timeout", "probeTimeout", float),
                            ("gossip-interval", "gossipInterval", float),
                            ("gossip-suspicion-mult", "suspicionMult", int)):
        if o[flag] is not None:
            given[key] = _positive(o, flag, kind)
    options = GossipOptions(profile, rejoinInterval=_positive(o, "gossip-rejoin-interval", float),
                            **given)
    config = options.memberlistConfig()
    if config.probeTimeout >= config.probeInterval:
        raise ConfigError("--gossip-probe-timeout (%g s) must be shorter than "
                          "--gossip-probe-interval (%g s)"
                          % (config.probeTimeout, config.probeInterval))
    return options


class NodeConfig:
    """
    Built from a mapping of flag name to value (``Options``, or a dict for
    code that composes a node itself); missing flags take ``DEFAULTS``.
    Raises ``ConfigError`` with the flag's name for anything etcd would
    refuse.
    """

    def __init__(self, options: Mapping[str, Any] | None = None, **overrides: Any) -> None:
        o = dict(DEFAULTS)
        for source in (options or {}), overrides:
            for k, v in source.items():
                if v is not None:
                    o[k.replace("_", "-")] = v
        self.options = o
        self.name = o["name"]
        if not self.name:
            raise ConfigError("--name must not be empty")
        self.dataDir = o["data-dir"] or "%s.etcd" % (self.name,)
        self.listenPeerURLs = parseURLs(o["listen-peer-urls"], "listen-peer-urls")
        self.advertisePeerURLs = parseURLs(o["initial-advertise-peer-urls"],
                                           "initial-advertise-peer-urls")
        self.listenClientURLs = parseURLs(o["listen-client-urls"], "listen-client-urls")
        self.advertiseClientURLs = parseURLs(o["advertise-client-urls"], "advertise-client-urls")
        self.token = o["initial-cluster-token"]
        if not self.token:
            raise ConfigError("--initial-cluster-token must not be empty")
        self.clusterState = o["initial-cluster-state"]
        if self.clusterState not in ("new", "existing"):
            raise ConfigError("--initial-cluster-state must be 'new' or 'existing', got %r"
                              % (self.clusterState,))
        initial = o["initial-cluster"] or ",".join(
            "%s=%s" % (self.name, u) for u in self.advertisePeerURLs)
        self.initialCluster = parseInitialCluster(initial)
        if self.name not in self.initialCluster:
            raise ConfigError("--initial-cluster has no member named %r (--name)" % (self.name,))
        if sorted(self.initialCluster[self.name]) != sorted(self.advertisePeerURLs):
            raise ConfigError(
                "--initial-cluster lists %s for %r but --initial-advertise-peer-urls is %s"
                % (",".join(self.initialCluster[self.name]), self.name,
                   ",".join(self.advertisePeerURLs)))
        seen: dict[Any, Any] = {}
        for name, urls in self.initialCluster.items():
            for u in urls:
                if u in seen:
                    raise ConfigError("--initial-cluster: URL %s is given to both %r and %r"
                                      % (u, seen[u], name))
                seen[u] = name
        self.heartbeatInterval = _positive(o, "heartbeat-interval") / 1000.0
        election = _positive(o, "election-timeout") / 1000.0
        if election < 5 * self.heartbeatInterval:
            raise ConfigError("--election-timeout must be at least 5 times --heartbeat-interval")
        self.electionTicks = int(round(election / self.heartbeatInterval))
        self.snapshotCount = _positive(o, "snapshot-count")
        self.snapshotCatchUpEntries = _positive(o, "snapshot-catchup-entries")
        # For the etcd v3 API (gRPC and its JSON gateway): the largest request.
        self.maxRequestBytes = _positive(o, "max-request-bytes")
        self.maxValueBytes = _positive(o, "max-value-bytes")
        self.requestTimeout = _positive(o, "request-timeout", float)
        try:
            self.logLevel = canonicalLevel(o["log-level"])
        except ValueError as e:
            raise ConfigError("--log-level: %s, got %r" % (e, o["log-level"])) from None
        self.logger = o["logger"]
        if self.logger not in LOGGERS:
            raise ConfigError("--logger must be one of %s (etcd 3.4's), got %r"
                              % (", ".join(LOGGERS), self.logger))
        self.listenMetricsURLs = parseURLs(o["listen-metrics-urls"], "listen-metrics-urls") \
            if o["listen-metrics-urls"] else []
        for url in self.listenMetricsURLs:
            if url in self.listenPeerURLs + self.listenClientURLs:
                raise ConfigError("--listen-metrics-urls %s is also a peer or client URL" % (url,))
        self._configureTLS(o)
        self.gossip = _gossipOptions(o)

        # IDs as etcd computes them at bootstrap (no time in the hash).
        self.memberIDs = {name: memberID(urls, self.token)
                          for name, urls in self.initialCluster.items()}
        self.id = self.memberIDs[self.name]
        self.clusterID = clusterID(self.memberIDs.values())

    def _configureTLS(self, o):
        """
        etcd's two TLS flag sets; https URLs need the matching certificate,
        and every file is read now so a bad one stops the start here.
        """
        try:
            self.peerTLS = TLSInfo.fromFlags(o, PEER)
            self.clientTLS = TLSInfo.fromFlags(o, CLIENT)
            checkURLs(self.listenPeerURLs, self.peerTLS, "--listen-peer-urls")
            # A client URL that is also a peer URL is served with the peer set.
            checkURLs([u for u in self.listenClientURLs if u not in self.listenPeerURLs],
                      self.clientTLS, "--listen-client-urls")
            # etcd serves https metrics URLs with the client certificate.
            checkURLs(self.listenMetricsURLs, self.clientTLS, "--listen-metrics-urls")
            for url in self.listenPeerURLs:
                if url in self.listenClientURLs and urlsplit(url).scheme == "https" \
                        and not self.peerTLS.trustedCAFile:
                    raise TLSConfigError(
                        "--listen-client-urls %s is also a peer URL: on one https port, "
                        "members prove who they are with a certificate from "
                        "--peer-trusted-ca-file, which is not given" % (url,))
            for info in (self.peerTLS, self.clientTLS):
                if info.configured:
                    info.validate()
        except TLSConfigError as e:
            raise ConfigError(str(e)) from None
        try:
            self.tlsWatchInterval = float(o["tls-watch-interval"] or 0)
        except (TypeError, ValueError):
            raise ConfigError("--tls-watch-interval must be a number of seconds") from None

    def tlsFor(self, url: str) -> TLSInfo | None:
        """
        The ``TLSInfo`` serving ``url``, or None for http: the peer set for
        a peer URL (also when a client URL shares its port), else the
        client set.
        """
        if urlsplit(url).scheme != "https":
            return None
        return self.peerTLS if url in self.listenPeerURLs else self.clientTLS

    @property
    def usesTLS(self) -> bool:
        urls = self.listenURLs + self.listenMetricsURLs + [
            u for us in self.initialCluster.values() for u in us]
        return any(urlsplit(u).scheme == "https" for u in urls) or self.peerTLS.configured

    @property
    def listenURLs(self) -> list[str]:
        """Every URL to listen on, each once (client and peer may share a port)."""
        out = []
        for u in self.listenPeerURLs + self.listenClientURLs:
            if u not in out:
                out.append(u)
        return out

    @property
    def raftDir(self) -> str:
        return os.path.join(self.dataDir, "member", "raft")

    @property
    def identityFile(self) -> str:
        return os.path.join(self.dataDir, "member", "identity.json")
