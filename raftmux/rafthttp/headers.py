# -*- test-case-name: raftmux.test.test_rafthttp_helpers -*-
"""
The version headers etcd puts on its peer requests and responses, and the
compatibility check it runs on them (spec 1.4, 1.5, 10).
"""

import re

__all__ = [
    "SERVER_VERSION", "MIN_CLUSTER_VERSION", "CLUSTER_VERSION",
    "MalformedVersion", "parseVersion", "checkVersionCompatibility",
    "supportsStreams", "requestHeaders",
]

# What etcd 3.4.23 sends, and its MinClusterVersion.
SERVER_VERSION = "3.4.23"
#: The most of an error answer (a 412's reason, a 403) a client reads.
ERROR_BODY_LIMIT = 64 * 1024
MIN_CLUSTER_VERSION = "3.0.0"
# The cluster version a 3.4 member reports on /version.
CLUSTER_VERSION = "3.4.0"

_LOCAL = (3, 4)
_LOCAL_MIN = (3, 0)

_SEMVER = re.compile(
    r"^(0|[1-9]\d{0,18})\.(0|[1-9]\d{0,18})\.(0|[1-9]\d{0,18})"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$")


class MalformedVersion(ValueError):
    """A version header that is not strict semver (etcd panics on it)."""


def parseVersion(value, default="2.0.0"):
    """
    ``(major, minor, patch)`` of a version header value (``bytes``, ``str``
    or None for absent, which reads as ``default``, etcd's 2.0.0).
    Prerelease and build metadata are accepted and ignored.
    """
    if value is None:
        value = default
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    match = _SEMVER.match(value)
    if match is None:
        raise MalformedVersion("%r is not in dotted-tri format" % (value,))
    return tuple(int(match.group(i)) for i in (1, 2, 3))


def checkVersionCompatibility(serverVersion, minClusterVersion):
    """
    etcd's request check: False when the remote is too old for us or needs
    a newer cluster than we are (major.minor only).  Raises
    ``MalformedVersion`` for a value that does not parse.
    """
    server = parseVersion(serverVersion)
    minimum = parseVersion(minClusterVersion)
    return server[:2] >= _LOCAL_MIN and minimum[:2] <= _LOCAL


def supportsStreams(serverVersion):
    """
    Whether a stream response's ``X-Server-Version`` allows both stream
    types: every version from 2.1 up does; an absent header (2.0.0) does
    not.  Raises ``MalformedVersion``.
    """
    return parseVersion(serverVersion)[:2] >= (2, 1)


def requestHeaders(localID, clusterID, urls, to=None):
    """
    The headers of a rafthttp request (spec 1.4), as a dict of bytes to a
    list of bytes for ``twisted.web.http_headers.Headers``.  ``to`` adds
    ``X-Raft-To`` (stream dials).
    """
    headers = {
        b"X-Server-From": [b"%x" % (localID,)],
        b"X-Server-Version": [SERVER_VERSION.encode()],
        b"X-Min-Cluster-Version": [MIN_CLUSTER_VERSION.encode()],
        b"X-Etcd-Cluster-ID": [b"%x" % (clusterID,)],
    }
    if urls:
        headers[b"X-PeerURLs"] = [",".join(urls).encode()]
    if to is not None:
        headers[b"X-Raft-To"] = [b"%x" % (to,)]
    return headers
