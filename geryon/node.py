"""`geryon node`: what one machine contributes to the cluster.

Its chunk disks: every chunk file in the chunk directory (chunk0, chunk1, ...) is served
as a tree on a port of its own and registered as `tcp!ADDR!PORT id chunkN host NAME
resource kfs size BYTES used BYTES free BYTES`, the way caerwyn's nodes registered each kfs
with grid/register; `used` and `free` are kept current.

Its cpu service (with cpu=True): blocks run by SSH exec (geryon.rcpu.service), registered
as `svc rstyx` with host, ncpu, load and counts kept current, as caerwyn's reglisten did;
and the node's own output chunks (cpu0, cpu1, ... in its state directory), served and
registered like the others with `cpudisk 1`, which refresh names dN.cpu.
"""

import asyncio
import logging
import re
from dataclasses import dataclass
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

UPDATE_DELAY = 0.5  # seconds: many writes in a burst make one registry update
STATUS_INTERVAL = 2.0  # seconds between updates of the cpu service's load and counts
CPU_STEM = "cpu"  # output chunks are cpu0, cpu1, ...: their ids never meet a chunkN's


def chunk_files(directory: Path, stem: str = "chunk") -> list[Path]:
    """The chunk files in a directory (stem0, stem1, ...), in number order."""
    pattern = re.compile(rf"{stem}(\d+)")
    found = [p for p in directory.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
    return sorted(found, key=lambda p: int(pattern.fullmatch(p.name).group(1)))


def create_chunks(directory: Path, count: int, capacity: int, stem: str = "chunk") -> list[Path]:
    """Make `count` new empty chunks after the highest numbered one."""
    directory.mkdir(parents=True, exist_ok=True)
    existing = [int(p.name[len(stem):]) for p in chunk_files(directory, stem)]
    start = max(existing, default=-1) + 1
    made = []
    for n in range(start, start + count):
        Chunk.create(directory / f"{stem}{n}", capacity).close()
        made.append(directory / f"{stem}{n}")
    return made


class ServedChunk:
    """One chunk, its server and its registry entry."""

    def __init__(self, node: "Node", path: Path, cpu: bool = False):
        self.node = node
        self.path = path
        self.id = path.name
        self.cpu = cpu  # an output disk of this node's cpu service
        self.chunk = Chunk.open(path)
        if self.chunk.repair:
            log.warning("%s", self.chunk.repair)
        self.disk = DiskTree(self.chunk, on_change=self.changed)
        self.server = Server(self.disk.root(), node.identity, keepalive=node.keepalive,
                             commands={"image-get": self.image_get, "image-put": self.put_image,
                                       "image-id": self.image_id})
        self.name = ""
        self.pending = None

    def attrs(self) -> dict:
        attrs = {"id": self.id, "host": self.node.name, "resource": "kfs",
                 "size": str(self.chunk.capacity), "used": str(self.chunk.used),
                 "free": str(self.chunk.free)}
        return {**attrs, "cpudisk": "1"} if self.cpu else attrs

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

    async def image_id(self, process, caller, args) -> None:
        """Say what the chunk holds now, as `LOGID LENGTH`: the log only grows and a
        compaction gives it a new id, so the pair names its content (rcpu caches by it)."""
        no_arguments("image-id", args)
        process.stdout.write(f"{self.chunk.log_id} {self.chunk.used}\n".encode())

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


@dataclass
class CpuSettings:
    """What a node's cpu service needs: where its output chunks and scratch live."""

    state_dir: Path
    output_chunks: int = 2
    output_size: int = 64 << 20
    cache_dir: Path | None = None  # default: on tmpfs (/dev/shm) when there is one
    cache_limit: int = 2 << 30


class Node:
    """A node's chunk disks and cpu service, served and registered."""

    def __init__(self, chunks_dir: Path | None, *, name: str, config: Config | None = None,
                 identity: Identity | None = None, listen_host: str = "",
                 cpu: CpuSettings | None = None):
        self.config = config or Config.load()
        self.identity = identity or Identity.load()
        self.keepalive = float(self.config.keepalive)
        self.chunks_dir = Path(chunks_dir) if chunks_dir else None
        self.name = name
        self.listen_host = listen_host
        self.registrar = Registrar(self.config, self.identity)
        self.chunks: list[ServedChunk] = []
        self.cpu_settings = cpu
        self.cpu = None  # the CpuService, once started
        self.cpu_server = None
        self.cpu_name = ""
        self.tasks: list[asyncio.Task] = []

    def served(self, addr: str) -> ServedChunk | None:
        """The chunk this node serves at a registered address, if it is one of ours."""
        return next((c for c in self.chunks if c.name == addr), None)

    def cpu_chunks(self) -> list[ServedChunk]:
        return [c for c in self.chunks if c.cpu]

    async def start(self) -> None:
        if self.chunks_dir is not None and not self.chunks_dir.is_dir():
            raise GeryonError(f"chunk directory {self.chunks_dir} does not exist; make it, or "
                              "start with --new-chunks N to create chunks there")
        if self.cpu_settings is not None:
            from geryon.rcpu.service import check_namespaces
            check_namespaces()  # before anything is registered: say plainly if it cannot be
        await self.registrar.connect(wait=True)  # at boot the registry may not be up yet
        host = self.listen_host or self.registrar.local_host
        if self.chunks_dir is not None:
            await self._serve_chunks(self.chunks_dir, "chunk", host, cpu=False)
        if self.cpu_settings is not None:
            await self._start_cpu(host)

    async def _serve_chunks(self, directory: Path, stem: str, host: str, cpu: bool) -> None:
        for stale in leftovers(directory):
            log.warning("removing %s: an image-put that was cut off", stale)
            stale.unlink()
        for path in chunk_files(directory, stem):
            try:
                served = ServedChunk(self, path, cpu=cpu)
            except ChunkError as err:  # one bad chunk must not keep the others offline
                log.error("not serving %s: %s", path, err)
                continue
            await served.server.start(f"tcp!{host}!0")
            served.name = f"tcp!{self._named(host)}!{served.server.port}"
            await self.registrar.add(served.name, served.attrs())
            self.chunks.append(served)
            log.info("serving %s as %s", path, served.name)

    def _named(self, host: str) -> str:
        return host if host not in ("*", "") else self.registrar.local_host

    async def _start_cpu(self, host: str) -> None:
        from geryon.rcpu.service import CpuService
        settings = self.cpu_settings
        outputs = Path(settings.state_dir) / "cpu"
        outputs.mkdir(parents=True, exist_ok=True)
        have = len(chunk_files(outputs, CPU_STEM))
        if have < settings.output_chunks:
            create_chunks(outputs, settings.output_chunks - have, settings.output_size,
                          CPU_STEM)
        await self._serve_chunks(outputs, CPU_STEM, host, cpu=True)
        self.cpu = CpuService(self, Path(settings.state_dir),
                              cache_dir=settings.cache_dir or default_cache_dir(self.name),
                              cache_limit=settings.cache_limit,
                              rc_files=(self.identity.directory / "gridrc.sh",))
        self.cpu_server = Server(self.cpu.tree(), self.identity, keepalive=self.keepalive,
                                 commands=self.cpu.commands)
        await self.cpu_server.start(f"tcp!{host}!0")
        self.cpu_name = f"tcp!{self._named(host)}!{self.cpu_server.port}"
        await self.registrar.add(self.cpu_name, self.cpu.attrs())
        self.tasks.append(asyncio.ensure_future(self._keep_cpu_status()))
        log.info("cpu service on %s", self.cpu_name)

    async def _keep_cpu_status(self) -> None:
        """Keep the registered load and counts current (only what changed is sent)."""
        sent = self.cpu.attrs()
        while True:
            await asyncio.sleep(STATUS_INTERVAL)
            now = self.cpu.attrs()
            changed = {k: v for k, v in now.items() if sent.get(k) != v}
            if changed:
                try:
                    await self.registrar.update(self.cpu_name, changed)
                    sent = now
                except GeryonError as err:  # the registrar registers again, with these
                    log.warning("cpu: could not update the registry: %s", err)

    async def run(self) -> None:
        await self.registrar.run()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.registrar.close()
        if self.cpu_server is not None:
            await self.cpu_server.close()
            await self.cpu.close()
        for served in self.chunks:
            await served.server.close()
            served.chunk.close()


def default_cache_dir(node_name: str) -> Path:
    """Where unpacked disks are kept: tmpfs when the machine has /dev/shm (making files
    there costs no disk writes), else the temporary directory."""
    import os
    import tempfile
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    return base / f"geryon-{os.getuid()}" / node_name / "cache"
