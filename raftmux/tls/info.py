# -*- test-case-name: raftmux.test.test_tls_config -*-
"""
``TLSInfo``: etcd's TLS flags for one role, checked early with messages
that name the flag and the file.

etcd has two sets of the same flags: the client-facing one (``--cert-file``,
``--key-file``, ``--trusted-ca-file``, ``--client-cert-auth``) and the peer
one (``--peer-cert-file`` ... ``--peer-client-cert-auth``, plus
``--peer-cert-allowed-cn`` / ``--peer-cert-allowed-hostname``).  A
``TLSInfo`` holds one set and knows which, so every error speaks in the
flag names the operator typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from raftmux.tls.errors import TLSConfigError

__all__ = ["CLIENT", "PEER", "TLSInfo", "checkURLs", "optFlags", "optParameters"]

#: The client-facing role (``--cert-file`` ...).
CLIENT = "client"
#: The peer role (``--peer-cert-file`` ...).
PEER = "peer"

# attribute -> (client flag, peer flag); None: the role has no such flag.
_FLAGS = {
    "certFile": ("cert-file", "peer-cert-file"),
    "keyFile": ("key-file", "peer-key-file"),
    "trustedCAFile": ("trusted-ca-file", "peer-trusted-ca-file"),
    "clientCertAuth": ("client-cert-auth", "peer-client-cert-auth"),
    "allowedCN": (None, "peer-cert-allowed-cn"),
    "allowedHostnames": (None, "peer-cert-allowed-hostname"),
}

_HELP = {
    "certFile": "path to the %s TLS certificate (PEM; may carry its chain)",
    "keyFile": "path to the %s TLS key (PEM, unencrypted)",
    "trustedCAFile": "path to the CA bundle that %s certificates must chain to",
    "clientCertAuth": "require and verify %s client certificates",
    "allowedCN": "comma-separated CNs a %s client certificate may carry",
    "allowedHostnames": "comma-separated hostnames/IPs a %s client certificate must match",
}

_WHO = {CLIENT: "client-facing", PEER: "peer"}


def _names(value):
    """``None``, ``"a,b"`` or an iterable of strings -> a tuple of names."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(v.strip() for v in value if v and v.strip())


class TLSInfo:
    """
    One role's TLS flags.  The constructor checks the combination (so a
    ``TLSInfo`` that exists makes sense); ``validate()`` also reads the
    files, as the server and client factories do when they start.

    @param certFile: our certificate (PEM), optionally followed by its chain.
    @param keyFile: its private key (PEM, unencrypted).
    @param trustedCAFile: the CA bundle peers' certificates must chain to;
        without it a client trusts the platform's CAs, as etcd does.
    @param clientCertAuth: a server requires a client certificate signed by
        ``trustedCAFile``.
    @param allowedCN: a client certificate must have one of these common
        names (etcd's ``--peer-cert-allowed-cn``).
    @param allowedHostnames: a client certificate must match one of these
        hostnames or IP addresses (``--peer-cert-allowed-hostname``).
    @param role: ``CLIENT`` or ``PEER``: which etcd flags these are.
    """

    def __init__(self, certFile: str | None = None, keyFile: str | None = None,
                 trustedCAFile: str | None = None, clientCertAuth: bool = False,
                 allowedCN: str | Iterable[str] | None = (),
                 allowedHostnames: str | Iterable[str] | None = (), role: str = CLIENT) -> None:
        if role not in (CLIENT, PEER):
            raise ValueError("role must be %r or %r, not %r" % (CLIENT, PEER, role))
        self.role = role
        self.certFile = certFile or None
        self.keyFile = keyFile or None
        self.trustedCAFile = trustedCAFile or None
        self.clientCertAuth = bool(clientCertAuth)
        self.allowedCN = _names(allowedCN)
        self.allowedHostnames = _names(allowedHostnames)
        self._checkCombination()

    @classmethod
    def fromFlags(cls, flags: Mapping[str, Any], role: str = PEER) -> TLSInfo:
        """
        A ``TLSInfo`` from a mapping of etcd flag names to values (a twistd
        ``usage.Options``, or a dict): ``flags["peer-cert-file"]`` and so on.
        Missing flags count as unset.
        """
        kwargs: dict[str, Any] = {}
        for attribute, names in _FLAGS.items():
            name = names[role == PEER]
            if name is not None and flags.get(name) is not None:
                kwargs[attribute] = flags.get(name)
        return cls(role=role, **kwargs)

    def flag(self, attribute: str) -> str:
        """The etcd flag (``--peer-cert-file``) for an attribute (``certFile``)."""
        name = _FLAGS[attribute][self.role == PEER]
        return "--" + name if name else attribute

    @property
    def configured(self) -> bool:
        """Is any TLS material given (a certificate or a trusted CA)?"""
        return bool(self.certFile or self.trustedCAFile)

    @property
    def hasCertificate(self) -> bool:
        return bool(self.certFile and self.keyFile)

    def _checkCombination(self):
        flag = self.flag
        if bool(self.certFile) != bool(self.keyFile):
            given, missing = (("certFile", "keyFile") if self.certFile
                              else ("keyFile", "certFile"))
            raise TLSConfigError("%s needs %s as well" % (flag(given), flag(missing)))
        if self.clientCertAuth and not self.trustedCAFile:
            raise TLSConfigError("%s needs %s (the CA that client certificates must chain to)"
                                 % (flag("clientCertAuth"), flag("trustedCAFile")))
        for names in ("allowedCN", "allowedHostnames"):
            if getattr(self, names) and not self.clientCertAuth:
                raise TLSConfigError("%s needs %s (there is no client certificate to check)"
                                     % (flag(names), flag("clientCertAuth")))
        if self.allowedCN and self.allowedHostnames:
            raise TLSConfigError("%s and %s are mutually exclusive"
                                 % (flag("allowedCN"), flag("allowedHostnames")))

    def validate(self) -> None:
        """
        Check the combination and read every file; raises ``TLSConfigError``
        naming the flag, the file and the problem.  Returns the loaded
        ``Material``.
        """
        from raftmux.tls.material import loadMaterial

        self._checkCombination()
        return loadMaterial(self)

    def __repr__(self):
        fields = ["%s=%r" % (k, getattr(self, k)) for k in _FLAGS if getattr(self, k)]
        return "TLSInfo(%s)" % ", ".join(["role=%r" % (self.role,)] + fields)


def checkURLs(urls: str | Iterable[str], tlsInfo: TLSInfo, flagName: str) -> list[str]:
    """
    Refuse ``https`` URLs in ``flagName`` (a listen flag such as
    ``--listen-peer-urls``) when ``tlsInfo`` has no certificate and key.
    ``urls`` is a list or etcd's comma-separated string.  An ``http`` URL
    with a certificate given is allowed (etcd serves it without TLS).
    Returns the ``https`` URLs.
    """
    if isinstance(urls, str):
        urls = urls.split(",")
    urls = [u.strip() for u in urls if u and u.strip()]
    secure = [u for u in urls if urlsplit(u).scheme == "https"]
    if not flagName.startswith("--"):
        flagName = "--" + flagName
    if secure and not tlsInfo.hasCertificate:
        raise TLSConfigError("%s %s needs %s and %s" % (
            flagName, secure[0], tlsInfo.flag("certFile"), tlsInfo.flag("keyFile")))
    return secure


def optParameters(role: str = PEER) -> list[list[Any]]:
    """The role's file and name flags, as ``usage.Options.optParameters`` rows."""
    rows = []
    for attribute, names in _FLAGS.items():
        name = names[role == PEER]
        if name is not None and attribute != "clientCertAuth":
            rows.append([name, None, None, _HELP[attribute] % (_WHO[role],)])
    return rows


def optFlags(role: str = PEER) -> list[list[Any]]:
    """The role's boolean flag (``--peer-client-cert-auth``), as ``optFlags`` rows."""
    name = _FLAGS["clientCertAuth"][role == PEER]
    return [[name, None, _HELP["clientCertAuth"] % (_WHO[role],)]]
