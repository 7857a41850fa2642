# -*- test-case-name: raftmux.test.test_tls_handshake -*-
"""
Words for why a handshake failed: OpenSSL's X.509 verify codes, TLS alert
numbers and ``OpenSSL.SSL.Error`` stacks, turned into one short phrase an
operator can act on ("unknown CA", "certificate has expired", "no client
certificate", "not a client certificate").
"""

from OpenSSL import SSL

from raftmux.tls.material import commonName

__all__ = ["verifyFailure", "alertText", "failureText"]

# X509_V_ERR_* codes (openssl/x509_vfy.h) that a peer can cause.
_UNKNOWN_CA = "unknown CA"
_VERIFY = {
    2: _UNKNOWN_CA + " (issuer certificate not found)",
    7: _UNKNOWN_CA + " (bad signature: signed by another CA with the same name?)",
    8: "certificate revocation list signature failure",
    18: _UNKNOWN_CA + " (self-signed certificate)",
    19: _UNKNOWN_CA + " (self-signed certificate in the chain)",
    20: _UNKNOWN_CA + " (issuer not in the trusted CA file)",
    21: _UNKNOWN_CA + " (cannot verify the first certificate)",
    22: "certificate chain too long",
    23: "certificate revoked",
    24: "invalid CA certificate in the chain",
    25: "chain longer than the CA allows (path length)",
    27: "certificate not trusted",
    28: "certificate rejected",
    62: "host name mismatch",
    64: "IP address mismatch",
}
_NOT_YET_VALID, _EXPIRED, _INVALID_PURPOSE = 9, 10, 26

# TLS alert descriptions (RFC 8446 section 6).
_ALERTS = {
    0: "close notify", 10: "unexpected message", 20: "bad record MAC",
    22: "record overflow", 40: "handshake failure", 42: "bad certificate",
    43: "unsupported certificate", 44: "certificate revoked", 45: "certificate expired",
    46: "certificate unknown", 47: "illegal parameter", 48: "unknown CA",
    49: "access denied", 50: "decode error", 51: "decrypt error",
    70: "protocol version", 71: "insufficient security", 80: "internal error",
    86: "inappropriate fallback", 90: "user canceled", 109: "missing extension",
    110: "unsupported extension", 112: "unrecognized name",
    116: "certificate required", 120: "no application protocol (ALPN)",
}

# Pieces of OpenSSL's reason strings -> (our phrase, is it about a certificate?).
_OPENSSL = [
    ("peer did not return a certificate", "no client certificate", True),
    ("certificate required", "no client certificate was sent; the peer requires one", True),
    ("http request", "plaintext HTTP sent to a TLS port", False),
    ("wrong version number", "not TLS (or an unsupported version)", False),
    ("unsupported protocol", "unsupported TLS version", False),
    ("no shared cipher", "no shared cipher", False),
    ("no application protocol", "no shared ALPN protocol", False),
    ("no suitable application protocol", "no shared ALPN protocol", False),
]

# Alerts a peer sends when it does not accept the certificate we showed it.
_REFUSED_OURS = {"unknown ca", "bad certificate", "certificate unknown",
                 "unsupported certificate", "certificate expired", "certificate revoked"}


def _when(moment):
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def verifyFailure(code, certificate, depth, role):
    """
    The phrase for X.509 verify error ``code`` on ``certificate`` (a
    ``cryptography`` certificate) at chain ``depth``; ``role`` is what the
    certificate was presented as (``"client"`` or ``"server"``).
    """
    if code == _EXPIRED:
        text = "certificate has expired (notAfter %s)" % (_when(certificate.not_valid_after_utc),)
    elif code == _NOT_YET_VALID:
        text = "certificate is not yet valid (notBefore %s)" % (
            _when(certificate.not_valid_before_utc),)
    elif code == _INVALID_PURPOSE:
        text = ("not a %s certificate (its extended key usage lacks %sAuth: "
                "a certificate for another role)" % (role, role))
    else:
        text = _VERIFY.get(code, "certificate verify error %d" % (code,))
    who = "CN=%s" % (commonName(certificate),)
    if depth:
        who += " (chain depth %d)" % (depth,)
    return "%s: %s" % (who, text)


def alertText(description):
    """``"unknown CA"`` for alert 48, and so on."""
    return _ALERTS.get(description, "alert %d" % (description,))


def _openSSLReasons(error):
    reasons = []
    for item in error.args[0] if error.args and isinstance(error.args[0], list) else ():
        if isinstance(item, tuple) and item:
            reasons.append(str(item[-1]))
    return reasons or [str(error) or type(error).__name__]


def failureText(failure):
    """
    ``(phrase, aboutCertificate)`` for a handshake that ended with
    ``failure``, or ``None`` when no TLS error ended it (the peer just
    went away, or we closed it).
    """
    error = failure.value if failure is not None else None
    if not isinstance(error, SSL.Error):
        return None
    reasons = _openSSLReasons(error)
    joined = "; ".join(reasons)
    for needle, phrase, aboutCertificate in _OPENSSL:
        if needle in joined:
            return phrase, aboutCertificate
    for reason in reasons:
        # "tlsv1 alert unknown ca", "tlsv13 alert certificate required", ...
        if " alert " in reason:
            alert = reason.split(" alert ", 1)[1]
            if alert in _REFUSED_OURS:
                return "the peer refused our certificate (alert %s)" % (alert,), True
            return "the peer sent alert %s" % (alert,), False
    return joined, "certificate" in joined
