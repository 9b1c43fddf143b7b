"""Disks from anywhere in the cluster: find a disk's chunk by name in the registry, dial
it, and read it, file by file over SFTP or whole as a chunk image over SSH exec."""

from asyncssh.sftp import FILEXFER_TYPE_DIRECTORY

from geryon.errors import GeryonError
from geryon.ns.ca import Identity
from geryon.ns.client import Client, RemoteError, explain
from geryon.registry.client import parse_service
from geryon.registry.core import Service


class DiskError(GeryonError):
    """A disk that cannot be found or used."""


def split_spec(spec: str) -> tuple[str, str]:
    """`d0.mbox:path/in/it` -> ('d0.mbox', 'path/in/it'); no colon means the disk's root."""
    disk, _, path = spec.partition(":")
    if not disk:
        raise DiskError(f"{spec!r} names no disk; write DISK[:PATH], e.g. d0.mbox:mail/1")
    return disk, path.strip("/")


async def lookup(registry: Client, disk: str) -> Service:
    """The registry entry of a disk (made by refresh)."""
    from geryon.registry.core import RESERVED
    if "/" in disk or disk in RESERVED or disk in (".", ".."):
        raise DiskError(f"{disk!r} is not a disk name (disks are named like d0.mbox)")
    try:
        line = (await registry.read(f"/{disk}")).decode().strip()
    except RemoteError:
        raise DiskError(f"disk {disk} is not in the registry: is it named in the ndb file, "
                        "is its node up, and has `geryon refresh` run?") from None
    service = parse_service(line)
    if "addr" not in service.attrs:
        raise DiskError(f"{disk} is registered but has no addr; it is not a disk")
    return service


async def dial_disk(registry: Client, disk: str, identity: Identity | None = None,
                    keepalive: float = 1.0) -> Client:
    service = await lookup(registry, disk)
    return await Client.connect(service.attrs["addr"], identity, keepalive=keepalive)


async def run(client: Client, command: str, data: bytes | None = None) -> bytes:
    """Run a disk command by SSH exec; return its stdout, or raise with its stderr."""
    try:
        result = await client.conn.run(command, input=data, encoding=None)
    except Exception as err:
        raise explain(err, f"{client.address}: {command}") from None
    if result.exit_status != 0:
        message = (result.stderr or b"").decode(errors="replace").strip()
        raise DiskError(f"{client.address}: {command} failed: {message or result.exit_status}")
    return result.stdout or b""


def is_dir(attrs) -> bool:
    """Whether SFTP attributes describe a directory."""
    return attrs.type == FILEXFER_TYPE_DIRECTORY


async def walk(client: Client, top: str = ""):
    """Yield (path, is_dir) beneath top, directories before what they hold."""
    sftp = await client.main()
    try:
        names = await sftp.readdir("/" + top)
    except Exception as err:
        raise explain(err, f"{client.address}: ls /{top}") from None
    for name in sorted(names, key=lambda n: n.filename):
        if name.filename in (".", ".."):
            continue
        path = f"{top}/{name.filename}" if top else name.filename
        yield path, is_dir(name.attrs), name.attrs
        if is_dir(name.attrs):
            async for item in walk(client, path):
                yield item
