"""
Prometheus metrics: the project's default registry, one set of metrics per
registry per part, and a Resource that serves a registry.

Every part takes a ``registry`` argument (a node passes its own); without
one it uses ``REGISTRY`` here, never prometheus_client's global registry, so
tests and several nodes in one process stay apart.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

T = TypeVar("T")

REGISTRY = CollectorRegistry(auto_describe=True)

_sets: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def metricsFor(metricsClass: Callable[[CollectorRegistry], T],
               registry: CollectorRegistry | None = None) -> T:
    """The ``metricsClass(registry)`` instance of ``registry``, made once per registry."""
    if registry is None:
        registry = REGISTRY
    perRegistry = _sets.setdefault(registry, {})
    metrics = perRegistry.get(metricsClass)
    if metrics is None:
        metrics = perRegistry[metricsClass] = metricsClass(registry)
    return metrics


class MetricsResource(Resource):
    """
    ``GET`` answers with the registry in Prometheus text format, rendered on
    the reactor thread.  (``prometheus_client.twisted`` renders on a thread
    pool and imports the reactor when imported; see twisted-notes 10.)
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__()
        self.registry = REGISTRY if registry is None else registry

    def render_GET(self, request: IRequest) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self.registry)
