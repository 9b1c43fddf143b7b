"""The registry service: the registry tree served over SSH, persistent entries on disk,
enrolment of new machines when the CA lives here, and an mDNS announcement if asked."""

import logging
from pathlib import Path

from geryon import dial
from geryon.ns.ca import CertificateAuthority, Identity
from geryon.ns.enrol import Enrolment
from geryon.ns.server import Server
from geryon.registry.core import Limits, Registry
from geryon.registry.store import SQLiteStore
from geryon.registry.tree import RegistryTree

log = logging.getLogger("geryon.registry")


class RegistryServer:
    """A running registry."""

    def __init__(self, state: Path, identity: Identity, *, ca: CertificateAuthority | None = None,
                 keepalive: float = 1.0, mdns_interface: str = "", limits: Limits | None = None):
        if limits is None:
            from geryon.config import Config
            limits = Limits.from_config(Config.load())
        self.store = SQLiteStore(Path(state))
        self.registry = Registry(self.store, limits)
        log.info("registry: %d persistent entries restored from %s", len(self.registry.services),
                 self.store.path)
        self.tree = RegistryTree(self.registry)
        enrolment = Enrolment(ca) if ca is not None and ca.exists() else None
        self.server = Server(self.tree, identity, keepalive=keepalive, enrolment=enrolment)
        self.mdns_interface = mdns_interface
        self.announcer = None

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self, address="tcp!*!registry") -> "RegistryServer":
        addr = dial.parse(address, "registry") if isinstance(address, str) else address
        await self.server.start(addr)
        if self.mdns_interface:
            from geryon.registry.mdns import Announcer
            self.announcer = Announcer(self.mdns_interface, self.port)
            await self.announcer.start()
        return self

    async def close(self) -> None:
        if self.announcer is not None:
            await self.announcer.close()
        await self.server.close()
        self.store.close()
