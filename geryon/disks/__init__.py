"""The cluster's view of disks: names in ndb/cluster, entries in the registry, the chunks
nodes serve, and filling and reading them from anywhere (docs/disks.md).  rcpu, mapreduce
and the web page use disks through this package; geryon.chunkfs below it is the chunk
format and the tree one node serves.

Pure (no I/O): errors; names (NamedDisk from ndb, RegisteredDisk from the registry, live
chunks, disk states); plan (refresh's actions, the chunks a load fills, files already
loaded).  I/O, thin: cluster (read ndb and registry), refresh (apply plans, watch, follow),
remote (find and dial one disk), load and sources (fill new disks), fetch (copy out).

refresh's plan() and load's load() are called by module (geryon.disks.plan.plan,
geryon.disks.load.load), whose names they share.  The names below are loaded on first
use, so that the pure modules load no asyncio or asyncssh.
"""

import importlib

_PUBLIC = {
    "DiskError": "geryon.disks.errors", "LoadError": "geryon.disks.errors",
    "RefreshError": "geryon.disks.errors",
    "NamedDisk": "geryon.disks.names", "RegisteredDisk": "geryon.disks.names",
    "DiskState": "geryon.disks.names", "disks_of": "geryon.disks.names",
    "live_chunks": "geryon.disks.names", "states": "geryon.disks.names",
    "unserved": "geryon.disks.names", "split_spec": "geryon.disks.names",
    "check_disk_name": "geryon.disks.names",
    "Action": "geryon.disks.plan", "plan_load": "geryon.disks.plan",
    "Target": "geryon.disks.plan",
    "named_disks": "geryon.disks.cluster", "disk_states": "geryon.disks.cluster",
    "Refresher": "geryon.disks.refresh", "Refreshed": "geryon.disks.refresh",
    "follow": "geryon.disks.refresh",
    "lookup": "geryon.disks.remote", "dial_disk": "geryon.disks.remote",
    "run": "geryon.disks.remote", "walk": "geryon.disks.remote",
    "LoadReport": "geryon.disks.load",
    "gather": "geryon.disks.sources", "fetch_all": "geryon.disks.fetch",
}

__all__ = list(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'geryon.disks' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
