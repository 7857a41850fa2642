# -*- test-case-name: raftmux.test.test_tls_handshake -*-
"""
Whose certificate is it: the checks behind etcd's
``--peer-cert-allowed-cn`` and ``--peer-cert-allowed-hostname`` (on the
verified client leaf), and the server-name check a client does.
"""

from service_identity import CertificateError, VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet.abstract import isIPAddress, isIPv6Address

from raftmux.tls.material import commonName

__all__ = ["allowedNameProblem", "peerCertificate", "serverNameProblem"]


def _matches(certificate, name):
    try:
        if isIPAddress(name) or isIPv6Address(name):
            verify_certificate_ip_address(certificate, name)
        else:
            verify_certificate_hostname(certificate, name)
    except (VerificationError, CertificateError, ValueError):
        return False
    return True


def allowedNameProblem(certificate, allowedCN, allowedHostnames):
    """
    ``None`` when ``certificate`` may be used (its CN is one of
    ``allowedCN``, or it matches one of ``allowedHostnames`` by DNS or IP
    SAN, as Go's ``VerifyHostname`` does for etcd), else why not.
    """
    if allowedCN:
        cn = commonName(certificate)
        if cn in allowedCN:
            return None
        return "CN=%s is not an allowed CN (%s)" % (cn, ", ".join(allowedCN))
    if allowedHostnames:
        if any(_matches(certificate, name) for name in allowedHostnames):
            return None
        return "CN=%s matches none of the allowed hostnames (%s)" % (
            commonName(certificate), ", ".join(allowedHostnames))
    return None


def serverNameProblem(certificate, host):
    """
    ``None`` when the server's ``certificate`` is valid for ``host`` (an IP
    SAN for an address, a DNS SAN for a name), else why not.
    """
    if _matches(certificate, host):
        return None
    kind = "IP address" if isIPAddress(host) or isIPv6Address(host) else "host name"
    return "CN=%s: not valid for %s %s (wrong SAN)" % (commonName(certificate), kind, host)


def peerCertificate(request):
    """
    The verified client certificate (``cryptography``) behind a twisted.web
    ``request`` (HTTP/1.1 or HTTP/2) or a transport, or ``None``.  Twisted's
    HTTP/2 request has no ``transport``; the TLS layer sits under the
    stream's connection (``H2Stream._conn``, no public name), so walk down
    to it.
    """
    layer = getattr(request, "transport", None) or getattr(request, "channel", request)
    for _ in range(4):
        if layer is None:
            return None
        get = getattr(layer, "getPeerCertificate", None)
        if get is not None:
            certificate = get()
            return certificate.to_cryptography() if certificate is not None else None
        layer = getattr(layer, "transport", None) or getattr(layer, "_conn", None)
    return None
