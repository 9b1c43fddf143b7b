"""The cluster's view of disks: names in ndb/cluster, entries in the registry, the chunks
nodes serve, and the commands that fill and read them (docs/disks.md).

refresh (make the registry's disk entries agree with ndb and the live chunks), load (fill
new disks from local files; sources says what is loaded), remote (find a disk in the
registry and dial it), fetch (copy from disks to local files).

The names below are loaded on first use, so that the pure parts load no asyncio or asyncssh.
"""

import importlib

_PUBLIC = {"Refresher": "geryon.disks.refresh", "RefreshError": "geryon.disks.refresh",
           "disks_of": "geryon.disks.refresh", "live_chunks": "geryon.disks.refresh",
           "plan": "geryon.disks.refresh", "states": "geryon.disks.refresh",
           "load": "geryon.disks.load", "gather": "geryon.disks.sources",
           "LoadError": "geryon.disks.sources", "DiskError": "geryon.disks.remote",
           "dial_disk": "geryon.disks.remote", "lookup": "geryon.disks.remote",
           "fetch_all": "geryon.disks.fetch"}

__all__ = list(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'geryon.disks' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
