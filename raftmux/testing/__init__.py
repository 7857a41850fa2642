"""
Helpers for testing code built on raftmux (part of the public API, like
``treq.testing``): ``raftmux.testing.tlsca`` mints a throw-away CA with
server and client certificates for TLS and mutual-TLS tests.
"""
