"""`geryon node`: what one machine contributes to the cluster.

For now: its chunk disks.  Every chunk file in the chunk directory (chunk0, chunk1, ...)
is served as a tree on a port of its own and registered as
`tcp!ADDR!PORT id chunkN host NAME resource kfs size BYTES used BYTES free BYTES`, the way
caerwyn's nodes registered each kfs with grid/register; `used` and `free` are kept current.
Later issues add the cpu service and the Owen worker here.
"""

import asyncio
import logging
import re
from pathlib import Path

from geryon.chunkfs.chunk import Chunk
from geryon.chunkfs.disk import DiskTree
from geryon.chunkfs.errors import ChunkError
from geryon.chunkfs.image import IncomingImage, leftovers
from geryon.config import Config
from geryon.errors import GeryonError
from geryon.ns.ca import Identity
from geryon.ns.server import Server
from geryon.registry.client import Registrar

log = logging.getLogger("geryon.node")

CHUNK_NAME = re.compile(r"chunk(\d+)$")
UPDATE_DELAY = 0.5  # seconds: many writes in a burst make one registry update


def chunk_files(directory: Path) -> list[Path]:
    """The chunk files in a directory, in number order."""
    found = [p for p in directory.iterdir() if CHUNK_NAME.fullmatch(p.name) and p.is_file()]
    return sorted(found, key=lambda p: int(CHUNK_NAME.fullmatch(p.name).group(1)))


def create_chunks(directory: Path, count: int, capacity: int) -> list[Path]:
    """Make `count` new empty chunks after the highest numbered one."""
    directory.mkdir(parents=True, exist_ok=True)
    existing = [int(CHUNK_NAME.fullmatch(p.name).group(1)) for p in chunk_files(directory)]
    start = max(existing, default=-1) + 1
    made = []
    for n in range(start, start + count):
        Chunk.create(directory / f"chunk{n}", capacity).close()
        made.append(directory / f"chunk{n}")
    return made


class ServedChunk:
    """One chunk, its server and its registry entry."""

    def __init__(self, node: "Node", path: Path):
        self.node = node
        self.path = path
        self.id = path.name
        self.chunk = Chunk.open(path)
        if self.chunk.repair:
            log.warning("%s", self.chunk.repair)
        self.disk = DiskTree(self.chunk, on_change=self.changed)
        self.server = Server(self.disk.root(), node.identity, keepalive=node.keepalive,
                             commands={"image-get": self.image_get, "image-put": self.put_image})
        self.name = ""
        self.pending = None

    def attrs(self) -> dict:
        return {"id": self.id, "host": self.node.name, "resource": "kfs",
                "size": str(self.chunk.capacity), "used": str(self.chunk.used),
                "free": str(self.chunk.free)}

    def changed(self) -> None:
        """Note a change of fill; the registry hears of a burst of them once."""
        if self.pending is None:
            self.pending = asyncio.get_running_loop().call_later(
                UPDATE_DELAY, lambda: asyncio.ensure_future(self.publish()))

    async def publish(self) -> None:
        """Tell the registry this chunk's fill now."""
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
        attrs = self.attrs()
        try:
            await self.node.registrar.update(self.name, {"used": attrs["used"],
                                                         "free": attrs["free"]})
        except GeryonError as err:  # the registrar registers again, with the new fill
            log.warning("%s: could not update the registry: %s", self.id, err)

    # The disk's bulk interface, by SSH exec (docs/disk.md): a whole chunk image in or out,
    # which is how `geryon load` fills a disk and how a disk is copied whole.
    async def put_image(self, process, caller, args) -> None:
        if not caller.may(frozenset({"cpu", "admin"})):
            raise GeryonError(f"{self.id}: permission denied; image-put needs role cpu or admin")
        no_arguments("image-put", args)
        await self.image_put(process)

    async def image_get(self, process, caller, args) -> None:
        """Write the chunk as it is now: the log is append-only, so a prefix is whole."""
        no_arguments("image-get", args)
        end = self.chunk.used
        with open(self.path, "rb") as f:
            offset = 0
            while offset < end:
                data = f.read(min(1 << 20, end - offset))
                if not data:
                    break
                process.stdout.write(data)
                await process.stdout.drain()
                offset += len(data)

    async def image_put(self, process) -> None:
        """Replace this (empty) chunk with the chunk image on stdin, checked whole first
        (geryon/chunkfs/image.py); the check runs in a thread, so the node goes on serving."""
        with IncomingImage(self.chunk) as incoming:
            while data := await process.stdin.read(1 << 20):
                incoming.write(data)
            image = await asyncio.to_thread(incoming.check)
            self.chunk = self.disk.chunk = incoming.install(image)
        await self.publish()  # before answering: the loader sees the new fill at once
        process.stdout.write(f"{self.chunk.counts()[0]} files\n".encode())


def no_arguments(command: str, args: list[str]) -> None:
    if args:
        raise GeryonError(f"{command} takes no arguments (got {' '.join(args)[:80]!r})")


class Node:
    """A node's chunk disks, served and registered."""

    def __init__(self, chunks_dir: Path, *, name: str, config: Config | None = None,
                 identity: Identity | None = None, listen_host: str = ""):
        self.config = config or Config.load()
        self.identity = identity or Identity.load()
        self.keepalive = float(self.config.keepalive)
        self.chunks_dir = Path(chunks_dir)
        self.name = name
        self.listen_host = listen_host
        self.registrar = Registrar(self.config, self.identity)
        self.chunks: list[ServedChunk] = []

    async def start(self) -> None:
        if not self.chunks_dir.is_dir():
            raise GeryonError(f"chunk directory {self.chunks_dir} does not exist; make it, or "
                              "start with --new-chunks N to create chunks there")
        await self.registrar.connect(wait=True)  # at boot the registry may not be up yet
        host = self.listen_host or self.registrar.local_host
        for stale in leftovers(self.chunks_dir):
            log.warning("removing %s: an image-put that was cut off", stale)
            stale.unlink()
        for path in chunk_files(self.chunks_dir):
            try:
                served = ServedChunk(self, path)
            except ChunkError as err:  # one bad chunk must not keep the others offline
                log.error("not serving %s: %s", path, err)
                continue
            await served.server.start(f"tcp!{host}!0")
            named_host = host if host not in ("*", "") else self.registrar.local_host
            served.name = f"tcp!{named_host}!{served.server.port}"
            await self.registrar.add(served.name, served.attrs())
            self.chunks.append(served)
            log.info("serving %s as %s", path, served.name)

    async def run(self) -> None:
        await self.registrar.run()

    async def close(self) -> None:
        await self.registrar.close()
        for served in self.chunks:
            await served.server.close()
            served.chunk.close()
