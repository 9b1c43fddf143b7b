"""Using the registry from a program: find it, query it, watch it, and keep services
registered across registry restarts (caerwyn's change to grid/register)."""

import asyncio
import logging

from geryon import dial, quote
from geryon.config import Config
from geryon.errors import GeryonError
from geryon.ns.ca import Identity
from geryon.ns.client import Client, RemoteError
from geryon.registry.core import Change, Service
from geryon.retry import Backoff

log = logging.getLogger("geryon.registry")


async def registry_address(config: Config) -> dial.Address:
    """The registry's address from the configuration, or by mDNS if that is on."""
    if config.registry:
        return dial.parse(config.registry, "registry")
    if config.use_mdns:
        from geryon.registry.mdns import discover
        return await discover(config.mdns_interface)
    raise GeryonError("no registry address: run `geryon join TOKEN REGISTRY`, set "
                      "GERYON_REGISTRY=tcp!host!6675, pass --registry, or turn mdns on")


async def dial_registry(config: Config | None = None, identity: Identity | None = None) -> Client:
    config = config or Config.load()
    address = await registry_address(config)
    return await Client.connect(address, identity, keepalive=float(config.keepalive))


def parse_service(line: str) -> Service:
    """A service from one line of `index` or `find`."""
    words = quote.split(line)
    if not words or len(words) % 2 == 0:
        raise GeryonError(f"registry sent a malformed service line: {line[:80]!r}")
    return Service(words[0], dict(zip(words[1::2], words[2::2])), "")


def parse_services(text: bytes) -> list[Service]:
    return [parse_service(line) for line in text.decode().splitlines() if line.strip()]


async def query(client: Client, *pairs: str) -> list[Service]:
    """Services matching `attr value ...` (value * = any value)."""
    if len(pairs) % 2:
        raise GeryonError(f"query {quote.join(pairs)}: give attribute/value pairs")
    return parse_services(await client.write("/find", quote.join(pairs), read_back=True))


async def watch(client: Client):
    """Yield each Change as it happens (op 'reset' when some were missed)."""
    f = await client.open("/event", "r", wait=True)
    try:
        while True:
            message = await f.read()
            if not message:
                return
            for line in message.decode().splitlines():
                seq, _, rest = line.partition(" ")
                op, _, body = rest.partition(" ")
                name = quote.split(body)[0] if body else ""
                yield Change(int(seq), op, name, body)
    finally:
        await f.close()


class Registrar:
    """Keeps services registered: registers each one on a held `new` file, and after the
    connection to the registry is lost, dials again and registers them all again."""

    def __init__(self, config: Config | None = None, identity: Identity | None = None,
                 *, backoff: Backoff | None = None):
        self.config = config or Config.load()
        self.identity = identity
        self.backoff = backoff or Backoff(initial=0.3, factor=1.5, cap=2.0)
        self.entries: dict[str, dict] = {}
        self.files: dict = {}
        self.client: Client | None = None

    async def connect(self) -> Client:
        self.client = await dial_registry(self.config, self.identity)
        return self.client

    @property
    def local_host(self) -> str:
        """The host name services here are registered under."""
        if self.config.host:
            return self.config.host
        if self.client is None:
            raise GeryonError("not connected to the registry yet")
        return self.client.local_host

    async def add(self, name: str, attrs: dict) -> None:
        self.entries[name] = dict(attrs)
        if self.client is not None:
            await self._register(name)

    async def update(self, name: str, attrs: dict) -> None:
        self.entries[name].update(attrs)
        f = self.files.get(name)
        if f is not None:
            await f.write(quote.join(w for kv in attrs.items() for w in kv))

    async def remove(self, name: str) -> None:
        self.entries.pop(name, None)
        f = self.files.pop(name, None)
        if f is not None:
            await f.close()

    async def _register(self, name: str) -> None:
        attrs = self.entries[name]
        line = quote.join([name, *(w for kv in attrs.items() for w in kv)])
        f = await self.client.open("/new", "w")
        try:
            await f.write(line)
        except RemoteError:
            await f.close()
            raise
        self.files[name] = f

    async def run(self) -> None:
        """Register and re-register for ever (cancel to stop)."""
        while True:
            try:
                if self.client is None or self.client.conn.is_closed():
                    self.client, self.files = None, {}
                    await self.connect()
                for name in list(self.entries):
                    if name not in self.files:
                        await self._register(name)
                self.backoff.reset()
                await self.client.wait_closed()
                log.warning("lost the registry at %s; dialling again", self.client.address)
            except (GeryonError, OSError, EOFError) as err:
                # Refused or unreachable: a duplicate name is an entry of ours the registry
                # has not yet seen die; a dead registry is restarting.  Both pass: retry.
                log.warning("registering: %s", err)
            await asyncio.sleep(self.backoff.delay())

    async def close(self) -> None:
        for name in list(self.files):
            await self.remove(name)
        if self.client is not None:
            await self.client.close()
