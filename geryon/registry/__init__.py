"""The registry of live services (Inferno's registry(4)) and its clients.

core (the semantics and an entry's life, no I/O), lines (the one formatter and parser of
service and event lines), index (find's index), store (where persistent entries are kept:
memory or SQLite), tree (the file tree),
server (the service), client (query, watch, Registrar that keeps entries registered),
announce (register / reglisten), mdns (finding the registry by zeroconf).

The names below are loaded on first use, so that `geryon.registry.core` alone loads no
asyncio or asyncssh.
"""

import importlib

_PUBLIC = {"Registrar": "geryon.registry.client", "dial_registry": "geryon.registry.client",
           "query": "geryon.registry.client", "watch": "geryon.registry.client",
           "Registry": "geryon.registry.core", "RegistryError": "geryon.registry.core",
           "Service": "geryon.registry.core", "Limits": "geryon.registry.core",
           "RegistryServer": "geryon.registry.server",
           **{name: "geryon.registry.lines" for name in (
               "Change", "LineReader", "format_event", "format_pairs", "format_service",
               "parse_event", "read_events", "read_services")}}

__all__ = list(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'geryon.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
