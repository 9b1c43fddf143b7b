"""The registry of live services (Inferno's registry(4)) and its clients.

core (the semantics, no I/O), store (persistent entries in SQLite), tree (the file tree),
server (the service), client (query, watch, Registrar that keeps entries registered),
announce (register / reglisten), mdns (finding the registry by zeroconf).
"""

from geryon.registry.client import Registrar, dial_registry, query, watch
from geryon.registry.core import Registry, RegistryError, Service
from geryon.registry.server import RegistryServer

__all__ = ["Registrar", "dial_registry", "query", "watch", "Registry", "RegistryError",
           "Service", "RegistryServer"]
