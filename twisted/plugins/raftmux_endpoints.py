"""
``muxado:`` endpoint strings for ``serverFromString``/``clientFromString``
(and so ``twistd web --listen muxado:tcp\\:8080``).  Import-light: the
parsers' module is imported only to build these two objects.
"""

from raftmux.muxado.endpointstring import clientParser, serverParser

__all__ = ["clientParser", "serverParser"]
