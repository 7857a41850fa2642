"""Socket options raftmux sets on the TCP connections it runs protocols over."""


def setNoDelay(transport):
    """
    Turn Nagle's algorithm off when ``transport`` is TCP (or TLS over TCP).

    Multiplexing protocols write many small frames (window updates, HTTP/2
    HEADERS, acks) and wait for small answers; with Nagle on, a small write
    waits for the peer's delayed ACK, which stalls request/response traffic
    for milliseconds at a time.  Transports without the option (a muxado
    stream, an in-memory test transport) are left alone.
    """
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is None:
        return False
    try:
        setter(True)
    except (OSError, AttributeError, NotImplementedError):
        return False
    return True
