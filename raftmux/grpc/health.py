# -*- test-case-name: raftmux.test.test_grpc_server -*-
"""
``grpc.health.v1.Health``, served by every ``GRPCServer``: ``Check``
answers the status set for a service (``""``: the server as a whole;
unknown: NOT_FOUND), ``Watch`` sends it at once and then every change
(SERVICE_UNKNOWN for a service not known, and the stream stays open).
A watcher whose stream is full gets the latest status when it drains, not
every intermediate one.

A status may also be *tracked*: computed by a function (a node's "do we
have a leader?") when a Check asks, and polled while a Watch waits on it.
"""

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from raftmux.grpc.status import Code, GRPCError
from raftmux.grpcpb import health_pb2

__all__ = ["HealthServicer"]

_Response = health_pb2.HealthCheckResponse


class HealthServicer:
    """The statuses, and the implementation of the Health service's two rpcs."""

    UNKNOWN = _Response.UNKNOWN
    SERVING = _Response.SERVING
    NOT_SERVING = _Response.NOT_SERVING
    SERVICE_UNKNOWN = _Response.SERVICE_UNKNOWN

    def __init__(self):
        self._statuses = {"": self.SERVING}
        self._waiters: dict[str, list[Deferred[None]]] = {}
        self._sources: dict[str, Callable[[], int]] = {}
        self._shutDown = False
        self._clock: Any = None
        self._interval = 1.0
        self._poller: Any = None

    def status(self, service=""):
        """The status of ``service``, or None if it is not known."""
        self._refresh(service)
        return self._statuses.get(service)

    def watchers(self, service=""):
        """How many Watch rpcs wait for ``service``'s next change."""
        return len(self._waiters.get(service, ()))

    def track(self, service, source, clock, interval=1.0):
        """
        ``service``'s status is ``source()`` from now on: read at each Check,
        and every ``interval`` seconds (on ``clock``) while a Watch waits on
        it.  ``setStatus`` no longer applies to it; ``shutdown`` still does.
        """
        self._sources[service] = source
        self._clock = clock
        self._interval = interval
        self._refresh(service)

    def _refresh(self, service):
        source = self._sources.get(service)
        if source is not None and not self._shutDown:
            self._set(service, source())

    def _poll(self):
        self._poller = None
        for service in list(self._sources):
            if self._waiters.get(service):
                self._refresh(service)
        self._schedulePoll()

    def _schedulePoll(self):
        if self._poller is None and any(self._waiters.get(s) for s in self._sources):
            self._poller = self._clock.callLater(self._interval, self._poll)

    def setStatus(self, service, status):
        """Set ``service``'s status (``""``: the server); watchers hear of a change."""
        if self._shutDown or service in self._sources:
            return
        self._set(service, status)

    def clearStatus(self, service):
        """Forget ``service`` (Check: NOT_FOUND; watchers: SERVICE_UNKNOWN)."""
        self._sources.pop(service, None)
        if self._statuses.pop(service, None) is not None:
            self._wake(service)

    def shutdown(self):
        """Every service NOT_SERVING from now on (a server going down)."""
        self._shutDown = True
        for service in list(self._statuses):
            self._set(service, self.NOT_SERVING)

    def resume(self):
        """Undo ``shutdown``: every service SERVING again (tracked ones: as tracked)."""
        self._shutDown = False
        for service in list(self._statuses):
            if service in self._sources:
                self._refresh(service)
            else:
                self._set(service, self.SERVING)

    def _set(self, service, status):
        if self._statuses.get(service) != status:
            self._statuses[service] = status
            self._wake(service)

    def _wake(self, service):
        waiters = self._waiters.pop(service, None)
        for d in waiters or ():
            d.callback(None)

    def _changed(self, service):
        waiters = self._waiters.setdefault(service, [])
        d: Deferred[None] = Deferred(lambda d: _remove(waiters, d))
        waiters.append(d)
        if service in self._sources:
            self._schedulePoll()
        return d

    # -- the rpcs ---------------------------------------------------------------

    def Check(self, request, call):
        status = self.status(request.service)
        if status is None:
            raise GRPCError(Code.NOT_FOUND, "unknown service")
        return _Response(status=status)

    async def Watch(self, request, call):
        service = request.service
        last = None
        while True:
            self._refresh(service)
            status = self._statuses.get(service, self.SERVICE_UNKNOWN)
            if status != last:
                last = status
                await call.send(_Response(status=status))
                continue
            await self._changed(service)


def _remove(items, item):
    try:
        items.remove(item)
    except ValueError:
        pass
