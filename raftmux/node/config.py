# -*- test-case-name: raftmux.test.test_node_config -*-
"""
A node's configuration with etcd's flag names, defaults and checks, and the
member and cluster IDs etcd would compute from it (spec 11.1, 11.2).
"""

import os
from urllib.parse import urlsplit

from raftmux.rafthttp import clusterID, memberID
from raftmux.tls import CLIENT, PEER, TLSConfigError, TLSInfo, checkURLs

__all__ = ["ConfigError", "NodeConfig", "parseURLs", "parseInitialCluster", "addressOf",
           "DEFAULTS"]

DEFAULTS = {
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
    "snapshot-count": 10000,
    "snapshot-catchup-entries": 5000,
    "max-value-bytes": 1024 * 1024,
    "request-timeout": 5.0,
    "log-level": "info",
    "tls-watch-interval": 0,
}

SCHEMES = ("http", "https")


class ConfigError(ValueError):
    """A flag or a combination of flags that cannot work; the message says which."""


def addressOf(url):
    """``"http://127.0.0.1:2380"`` -> ``("127.0.0.1", 2380)``."""
    parts = urlsplit(url)
    return parts.hostname, parts.port


def parseURLs(text, flag):
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


def parseInitialCluster(text):
    """``"n1=http://a:1,n1=http://a:2,n2=..."`` -> ``{name: [urls]}`` (order kept)."""
    cluster = {}
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


class NodeConfig:
    """
    Built from a mapping of flag name to value (``Options``, or a dict for
    code that composes a node itself); missing flags take ``DEFAULTS``.
    Raises ``ConfigError`` with the flag's name for anything etcd would
    refuse.
    """

    def __init__(self, options=None, **overrides):
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
        seen = {}
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
        self.maxValueBytes = _positive(o, "max-value-bytes")
        self.requestTimeout = _positive(o, "request-timeout", float)
        self.logLevel = o["log-level"]
        self._configureTLS(o)

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

    def tlsFor(self, url):
        """
        The ``TLSInfo`` serving ``url``, or None for http: the peer set for
        a peer URL (also when a client URL shares its port), else the
        client set.
        """
        if urlsplit(url).scheme != "https":
            return None
        return self.peerTLS if url in self.listenPeerURLs else self.clientTLS

    @property
    def usesTLS(self):
        urls = self.listenURLs + [u for us in self.initialCluster.values() for u in us]
        return any(urlsplit(u).scheme == "https" for u in urls) or self.peerTLS.configured

    @property
    def listenURLs(self):
        """Every URL to listen on, each once (client and peer may share a port)."""
        out = []
        for u in self.listenPeerURLs + self.listenClientURLs:
            if u not in out:
                out.append(u)
        return out

    @property
    def raftDir(self):
        return os.path.join(self.dataDir, "member", "raft")

    @property
    def identityFile(self):
        return os.path.join(self.dataDir, "member", "identity.json")
