"""Find the registry by mDNS (`_geryon._tcp.local.`), with zeroconf.

Off unless asked for, and then bound to one named interface address only: Geryon never
sends multicast on an interface it was not told to use.
"""

import asyncio
import ipaddress
import socket

from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from geryon import dial
from geryon.errors import GeryonError

SERVICE_TYPE = "_geryon._tcp.local."


class DiscoveryError(GeryonError):
    """mDNS could not be used or found nothing."""


def _zeroconf(interface: str) -> AsyncZeroconf:
    if not interface:
        raise DiscoveryError("mDNS needs an interface address (mdns_interface / "
                             "GERYON_MDNS_INTERFACE); it is never used on all interfaces")
    try:
        version = IPVersion.V6Only if ipaddress.ip_address(interface).version == 6 \
            else IPVersion.V4Only
    except ValueError:
        raise DiscoveryError(f"mDNS interface {interface!r} is not an IP address") from None
    return AsyncZeroconf(interfaces=[interface], ip_version=version)


class Announcer:
    """Announce a registry listening on `port` at the address `interface`."""

    def __init__(self, interface: str, port: int):
        self.interface = interface
        self.port = port
        self.zc = None
        self.info = None

    async def start(self) -> None:
        self.zc = _zeroconf(self.interface)
        host = socket.gethostname()
        self.info = AsyncServiceInfo(
            SERVICE_TYPE, f"registry-{host}-{self.port}.{SERVICE_TYPE}",
            addresses=[ipaddress.ip_address(self.interface).packed], port=self.port,
            properties={"svc": "registry"}, server=f"{host}.local.")
        await self.zc.async_register_service(self.info)

    async def close(self) -> None:
        if self.zc is not None:
            await self.zc.async_unregister_service(self.info)
            await self.zc.async_close()
            self.zc = None


async def discover(interface: str, timeout: float = 5.0) -> dial.Address:
    """The address of the first registry announced on the interface's network."""
    zc = _zeroconf(interface)
    found: asyncio.Queue = asyncio.Queue()

    def on_change(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Added:
            found.put_nowait(name)

    browser = AsyncServiceBrowser(zc.zeroconf, [SERVICE_TYPE], handlers=[on_change])
    try:
        async with asyncio.timeout(timeout):
            while True:
                name = await found.get()
                info = AsyncServiceInfo(SERVICE_TYPE, name)
                if await info.async_request(zc.zeroconf, 3000):
                    addresses = info.parsed_addresses()
                    if addresses and info.port:
                        return dial.Address(addresses[0], info.port)
    except TimeoutError:
        raise DiscoveryError(f"no registry announced itself by mDNS on {interface} within "
                             f"{timeout:g} s; is it started with mDNS on?") from None
    finally:
        await browser.async_cancel()
        await zc.async_close()
