# -*- test-case-name: raftmux.test.test_node_kv -*-
"""
The member's identity file in its data directory: its ID, the cluster ID
and the member list it started with.  Written once (atomically, fsynced)
on first start; on a restart it wins over the flags, as etcd's WAL
metadata does.
"""

import json
import os

__all__ = ["load", "save", "IdentityError"]


class IdentityError(ValueError):
    """An identity file that cannot be read."""


def load(path):
    """The identity dict (IDs as ints), or None when there is no file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    try:
        d = json.loads(raw)
        d["id"] = int(d["id"], 16)
        d["clusterID"] = int(d["clusterID"], 16)
        for m in d.get("members", []):
            m["id"] = int(m["id"], 16)
    except (ValueError, KeyError, TypeError) as e:
        raise IdentityError("%s is damaged: %s" % (path, e)) from None
    return d


def save(path, id, clusterID, name, members):
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    body = json.dumps({
        "id": "%x" % (id,), "clusterID": "%x" % (clusterID,), "name": name,
        "members": [dict(m, id="%x" % (m["id"],)) for m in members],
    }, indent=1).encode()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
