# -*- test-case-name: raftmux.test.test_rafthttp_helpers -*-
"""
etcd's ``urlPicker`` (spec 7): one per peer, shared by its stream readers,
pipeline and snapshot sender.
"""

__all__ = ["URLPicker", "normalizeURLs"]


def normalizeURLs(urls):
    """
    A peer's URLs as etcd keeps them: ``str``, without a trailing slash,
    sorted lexicographically.  An empty list is refused.
    """
    out = sorted(u.decode() if isinstance(u, bytes) else str(u) for u in urls)
    out = [u.rstrip("/") for u in out]
    if not out:
        raise ValueError("a peer needs at least one URL")
    for u in out:
        if not (u.startswith("http://") or u.startswith("https://")):
            raise ValueError("not an http(s) URL: %r" % (u,))
    return out


class URLPicker:
    """
    ``pick()`` is the current URL.  ``unreachable(url)`` moves on by one only
    if ``url`` is still the current one, so several users failing on the
    same URL do not skip past good ones.  ``update(urls)`` starts over.
    """

    def __init__(self, urls):
        self.update(urls)

    def update(self, urls):
        self.urls = normalizeURLs(urls)
        self._index = 0

    def pick(self):
        return self.urls[self._index]

    def unreachable(self, url):
        if url == self.urls[self._index]:
            self._index = (self._index + 1) % len(self.urls)
