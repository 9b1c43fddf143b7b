"""One disk from anywhere in the cluster: find its registry entry by name, dial it, and
use it, file by file over SFTP or whole as a chunk image over SSH exec (docs/disk.md)."""

from geryon.disks.errors import DiskError
from geryon.disks.names import RegisteredDisk, check_disk_name
from geryon.ns.ca import Identity
from geryon.ns.client import Client, RemoteError, is_dir
from geryon.registry.client import parse_service

CUT_OFF = 255  # the exit status a run gets when the channel closed before an exit status


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


async def run(client: Client, command: str, data: bytes | None = None,
              stdout=None) -> bytes:
    """Run a disk command by SSH exec; return its stdout (or write it to the file stdout
    names).  DiskError when the node ran it and it failed (so it changed nothing);
    RemoteError when it could not run or was cut off, so that what it did is not known."""
    done = await client.run(command, input=data, stdout=stdout)
    if done.exit_status == CUT_OFF:
        raise RemoteError(f"{client.address}: {command} was cut off: the connection closed "
                          "before the command ended")
    if not done.ok:
        message = done.stderr.decode(errors="replace").strip()
        raise DiskError(f"{client.address}: {command} failed: {message or done.exit_status}")
    return done.stdout


async def walk(client: Client, top: str = ""):
    """Yield (path, is_dir, attributes) beneath top, directories before what they hold."""
    for name, attrs in await client.listdir("/" + top):
        path = f"{top}/{name}" if top else name
        yield path, is_dir(attrs), attrs
        if is_dir(attrs):
            async for item in walk(client, path):
                yield item
