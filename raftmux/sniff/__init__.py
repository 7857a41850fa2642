# -*- test-case-name: raftmux.test.test_sniff -*-
"""
One port, many protocols: a ``ServerFactory`` that reads the first bytes
of each connection, asks an ordered list of matchers, and hands the
connection (its real transport, with the sniffed bytes replayed once) to
the factory of the first matcher that matches.  soheilhy/cmux's idea, done
the Twisted way; see ``docs/sniff.md``.

    from raftmux.sniff import SniffingFactory, http1, http2, tls, muxado

    factory = SniffingFactory([
        (http2(), site),                      # h2c, Twisted's own HTTP/2
        (tls(), TLSMemoryBIOFactory(options, False, innerSniffer)),
        (http1(), site),
        (muxado(), MuxadoServerFactory(streams)),
    ], timeout=10, maxBytes=4096)
"""

from raftmux.sniff._metrics import REGISTRY, SniffMetrics, metricsFor
from raftmux.sniff._results import MATCH, NEED_MORE, NO_MATCH, Result
from raftmux.sniff.factory import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    SniffingFactory,
    SniffingProtocol,
)
from raftmux.sniff.matchers import (
    Matcher,
    anyBytes,
    http1,
    http1HeaderField,
    http2,
    http2HeaderField,
    muxado,
    prefix,
    tls,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "MATCH",
    "NEED_MORE",
    "NO_MATCH",
    "REGISTRY",
    "Result",
    "Matcher",
    "SniffMetrics",
    "SniffingFactory",
    "SniffingProtocol",
    "anyBytes",
    "http1",
    "http1HeaderField",
    "http2",
    "http2HeaderField",
    "metricsFor",
    "muxado",
    "prefix",
    "tls",
]
