"""One disk from anywhere in the cluster: find its registry entry by name, dial it, and
use it, file by file over SFTP or whole as a chunk image over SSH exec (docs/disk.md)."""

from asyncssh.sftp import FILEXFER_TYPE_DIRECTORY

from geryon.disks.errors import DiskError
from geryon.disks.names import RegisteredDisk, check_disk_name
from geryon.ns.ca import Identity
from geryon.ns.client import Client, RemoteError, explain
from geryon.registry.client import parse_service


async def lookup(registry: Client, disk: str) -> RegisteredDisk:
    """The registry entry of a disk (made by refresh)."""
    check_disk_name(disk)
    try:
        line = (await registry.read(f"/{disk}")).decode().strip()
    except RemoteError:
        raise DiskError(f"disk {disk} is not in the registry: is it named in the ndb file, "
                        "is its node up, and has `geryon refresh` run?") from None
    return RegisteredDisk.of(parse_service(line))


async def dial_disk(registry: Client, disk: str, identity: Identity | None = None,
                    keepalive: float = 1.0) -> Client:
    """A connection to the chunk that serves the disk now."""
    found = await lookup(registry, disk)
    return await Client.connect(found.addr, identity, keepalive=keepalive)


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


async def listing(client: Client, path: str = "", what: str = "") -> list:
    """(name, attributes) of what the directory path holds, sorted by name."""
    sftp = await client.main()
    try:
        names = await sftp.readdir("/" + path)
    except Exception as err:
        raise explain(err, what or f"{client.address}: ls /{path}") from None
    return sorted(((n.filename, n.attrs) for n in names if n.filename not in (".", "..")),
                  key=lambda pair: pair[0])


async def walk(client: Client, top: str = ""):
    """Yield (path, is_dir, attributes) beneath top, directories before what they hold."""
    for name, attrs in await listing(client, top):
        path = f"{top}/{name}" if top else name
        yield path, is_dir(attrs), attrs
        if is_dir(attrs):
            async for item in walk(client, path):
                yield item
