"""Using the registry from a program: find it, query it, watch it, and keep services
registered across registry restarts (caerwyn's change to grid/register)."""

import asyncio
import logging

from geryon import dial, quote
from geryon.config import Config
from geryon.errors import GeryonError
from geryon.ns.ca import Identity
from geryon.ns.client import Client, RemoteError
from geryon.registry.core import Service
from geryon.registry.lines import (LineReader, format_pairs, format_service,
                                   parse_event, parse_service as parse_line, read_services)
from geryon.retry import Backoff, Reconnect

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
    """A service from one line of `index` or `find` (RegistryError if it is not one)."""
    return Service(*parse_line(line))


def parse_services(text: bytes) -> list[Service]:
    """The services of a whole `index` or `find` answer."""
    return [Service(name, attrs) for name, attrs in read_services(text)]


async def query(client: Client, *pairs: str) -> list[Service]:
    """Services matching `attr value ...` (value * = any value)."""
    if len(pairs) % 2:
        raise GeryonError(f"query {quote.join(pairs)}: give attribute/value pairs")
    return parse_services(await client.write("/find", format_pairs(zip(pairs[0::2], pairs[1::2])),
                                             read_back=True))


async def watch(client: Client, on_open=None):
    """Yield each Change as it happens (op 'reset' when some were missed); a change that
    arrives over several reads is put together first.  on_open() is called once `event`
    is open: every change after that moment will be yielded."""
    f = await client.open("/event", "r", wait=True)
    if on_open is not None:
        on_open()
    reader = LineReader(parse_event, f"{client.address}: /event")
    try:
        while True:
            message = await f.read()
            if not message:
                reader.close()
                return
            reader.feed(message)
            while (change := reader.next()) is not None:
                yield change
    finally:
        await f.close()


class Registrar:
    """Keeps services registered: registers each one on a held `new` file, and after the
    connection to the registry is lost, dials again and registers them all again (the one
    reconnect loop, geryon.retry.Reconnect)."""

    def __init__(self, config: Config | None = None, identity: Identity | None = None,
                 *, backoff: Backoff | None = None, sleep=asyncio.sleep):
        self.config = config or Config.load()
        self.identity = identity
        self.entries: dict[str, dict] = {}
        self.files: dict = {}
        self.client: Client | None = None
        self.sleep = sleep
        self.loop = Reconnect(self._dial, self._serve, what="registry", sleep=sleep,
                              backoff=backoff or Backoff(initial=0.3, factor=1.5, cap=2.0))

    async def _dial(self) -> Client:
        return await dial_registry(self.config, self.identity)

    async def connect(self, wait: bool = False) -> Client:
        """Dial the registry once (RemoteError if it cannot be reached), or with wait=True
        until it answers (a node at boot waits for its registry)."""
        self.client = await (self.loop.connect() if wait else self._dial())
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
            await f.write(format_pairs(attrs))

    async def remove(self, name: str) -> None:
        self.entries.pop(name, None)
        f = self.files.pop(name, None)
        if f is not None:
            try:
                await f.close()
            except RemoteError:
                if self.client is not None and not self.client.conn.is_closed():
                    raise
                # the connection is gone, and a live entry with it: nothing left to remove

    async def _register(self, name: str) -> None:
        attrs = self.entries[name]
        line = format_service(name, attrs)
        f = await self.client.open("/new", "w")
        try:
            await f.write(line)
        except RemoteError:
            await f.close()
            raise
        self.files[name] = f

    async def _serve(self, client: Client) -> None:
        """Register every entry on this connection, then hold them until it ends."""
        if client is not self.client:  # a new connection: nothing is registered on it
            self.client, self.files = client, {}
        try:
            while missing := [name for name in self.entries if name not in self.files]:
                for name in missing:
                    try:
                        await self._register(name)
                    except RemoteError as err:
                        if client.conn.is_closed():
                            raise
                        # A duplicate is an entry of ours the registry has not yet seen
                        # die (its connection was cut, not closed): try again shortly.
                        log.warning("registering %s: %s", name, err)
                if any(name not in self.files for name in self.entries):
                    await self.sleep(self.loop.backoff.delay())
            self.loop.backoff.reset()
            await client.wait_closed()
        finally:
            self.client, self.files = None, {}

    async def run(self) -> None:
        """Register and re-register for ever (cancel to stop)."""
        client = self.client
        if client is not None and client.conn.is_closed():
            client = self.client = None
        await self.loop.run(client)

    async def close(self) -> None:
        for name in list(self.files):
            await self.remove(name)
        if self.client is not None:
            await self.client.close()
