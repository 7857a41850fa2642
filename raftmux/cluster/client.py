# -*- test-case-name: raftmux.test.test_node_cli -*-
"""
The local cluster's HTTP client: one request at a time to a member's URL,
each on a new connection, with a deadline and a bounded answer.
"""

from twisted.internet import defer
from twisted.web.client import Agent, HTTPConnectionPool

from raftmux.httpbody import BytesProducer, readBody

__all__ = ["ClusterHTTPClient", "RESPONSE_LIMIT"]

#: The largest answer read from a member (a value is at most 1 MiB by
#: default; /metrics is tens of KiB).
RESPONSE_LIMIT = 16 * 1024 * 1024


class ClusterHTTPClient:
    """``request(url, method, body, timeout)`` fires with ``(code, body, headers)``."""

    def __init__(self, reactor):
        self.reactor = reactor
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.agent = Agent(reactor, pool=self.pool)

    def request(self, url, method="GET", body=None, timeout=10.0):
        """
        ``method url`` (text or bytes); ``body`` text or bytes.  Fails on a
        refused connection, after ``timeout`` seconds, or with
        ``raftmux.httpbody.BodyTooLarge``.
        """
        if isinstance(url, str):
            url = url.encode("ascii")
        if isinstance(method, str):
            method = method.encode("ascii")
        if isinstance(body, str):
            body = body.encode("utf-8")

        async def go():
            producer = BytesProducer(body) if body is not None else None
            response = await self.agent.request(method, url, None, producer)
            data = await readBody(response, RESPONSE_LIMIT)
            return response.code, data, response.headers
        d = defer.ensureDeferred(go())
        d.addTimeout(timeout, self.reactor)
        return d

    def close(self):
        """Close the pool's connections; a Deferred."""
        return self.pool.closeCachedConnections()
