"""`geryon node`: what one machine contributes to the cluster.

Its chunk disks: every chunk file in the chunk directory (chunk0, chunk1, ...) is served
as a tree on a port of its own and registered as `tcp!ADDR!PORT id chunkN host NAME
resource kfs size BYTES used BYTES free BYTES`, the way caerwyn's nodes registered each kfs
with grid/register; `used` and `free` are kept current.

Its cpu service (with cpu=True): blocks run by SSH exec (geryon.rcpu.service), registered
as `svc rstyx` with host, ncpu, load and counts kept current, as caerwyn's reglisten did;
and the node's own output chunks (cpu0, cpu1, ... in its state directory), served and
registered like the others with `cpudisk 1`, which refresh names dN.cpu.

A chunk may be a replica of another node's chunk (`replicate HOST!chunkN`, kept across
restarts in a mark file `.chunkN.replica` beside it): it is then served read-only,
registered with `replicaof HOST!chunkN`, and a Follower (geryon.disks.replica) keeps it a
copy of its master.  Every chunk registers its `log` id, so that refresh can tell whether a
replica holds what its master last published.
"""

import asyncio
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from geryon.chunkfs.chunk import Chunk
from geryon.chunkfs.disk import DiskTree
from geryon.chunkfs.errors import ChunkError
from geryon.chunkfs.image import IncomingImage, leftovers
from geryon.chunkfs.record import MAX_CAPACITY
from geryon.config import Config
from geryon.errors import GeryonError
from geryon.ns.ca import Identity
from geryon.ns.server import Server
from geryon.registry.client import Registrar

log = logging.getLogger("geryon.node")

UPDATE_DELAY = 0.5  # seconds: many writes in a burst make one registry update
STATUS_INTERVAL = 2.0  # seconds between updates of the cpu service's load and counts
CPU_STEM = "cpu"  # output chunks are cpu0, cpu1, ...: their ids never meet a chunkN's
WRITERS = frozenset({"cpu", "admin"})
SYNC_WAIT = 60.0  # seconds `replicate` waits for the first catch-up unless told otherwise


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
        self.disk.read_only = self.refusal
        self.server = Server(self.disk.root(), node.identity, keepalive=node.keepalive,
                             commands={"image-get": self.image_get, "image-put": self.put_image,
                                       "image-id": self.image_id, "image-tail": self.image_tail,
                                       "image-sum": self.image_sum,
                                       "replicate": self.replicate, "promote": self.promote})
        self.name = ""
        self.pending = None
        self.grew = asyncio.Event()  # set (and replaced) at every change: image-tail waits
        self.mark = path.with_name(f".{path.name}.replica")
        self.master = read_mark(self.mark) if not cpu else None
        self.follower = None
        self.following = None  # the follower's task

    def attrs(self) -> dict:
        attrs = {"id": self.id, "host": self.node.name, "resource": "kfs",
                 "size": str(self.chunk.capacity), "used": str(self.chunk.used),
                 "free": str(self.chunk.free), "log": self.chunk.log_id}
        if self.master:
            attrs["replicaof"] = self.master
        return {**attrs, "cpudisk": "1"} if self.cpu else attrs

    def changed(self) -> None:
        """Note a change of fill; the registry hears of a burst of them once."""
        self.grew.set()
        self.grew = asyncio.Event()
        if self.pending is None:
            self.pending = asyncio.get_running_loop().call_later(
                UPDATE_DELAY, lambda: asyncio.ensure_future(self.publish()))

    # Being a replica.

    def refusal(self) -> str | None:
        """Why a client may not change this chunk: it is a replica (None when it may)."""
        if not self.master:
            return None
        if self.follower is not None and not self.follower.master_live():
            return (f"{self.id} on {self.node.name} is a replica of {self.master} and "
                    f"read-only: its master {self.master} is down, so the disk is read-only "
                    "until the master returns (or `geryon disks promote` makes this replica "
                    "the master)")
        return (f"{self.id} on {self.node.name} is a replica of {self.master} and read-only: "
                f"write to its master, {self.master}")

    def start_following(self) -> None:
        from geryon.disks.replica import Follower
        self.follower = Follower(self, lambda: self.node.registrar.client, self.node.identity,
                                 self.node.keepalive)
        self.following = asyncio.ensure_future(self.follower.run())

    async def stop_following(self) -> None:
        if self.following is not None:
            self.following.cancel()
            await asyncio.gather(self.following, return_exceptions=True)
        self.follower = self.following = None

    def appended(self) -> None:
        """The follower appended to the chunk: wake its own tails and tell the registry."""
        self.changed()

    def replaced(self, chunk: Chunk) -> None:
        """The follower swapped in the master's whole log."""
        self.chunk = self.disk.chunk = chunk
        self.changed()

    async def reregister(self) -> None:
        """Register again with attributes that changed set (an attribute cannot be unset
        in place)."""
        if self.name:
            await self.node.registrar.remove(self.name)
            await self.node.registrar.add(self.name, self.attrs())

    async def replicate(self, process, caller, args) -> None:
        """`replicate HOST!chunkN [SECONDS]`: make this chunk a replica of that one (kept
        across restarts), and answer once it has caught up (or after SECONDS)."""
        from geryon.disks.replica import parse_master, wait_in_sync
        need_role("replicate", caller, self.id)
        if not 1 <= len(args) <= 2:
            raise GeryonError("replicate takes HOST!chunkN and, optionally, the seconds to "
                              "wait for it to catch up")
        host, chunk_id = parse_master(args[0])
        seconds = seconds_argument("replicate", args[1] if len(args) > 1 else None,
                                   SYNC_WAIT, 600.0)
        if self.cpu:
            raise GeryonError(f"{self.id} is an output chunk of the cpu service; only data "
                              "chunks are replicas")
        if host == self.node.name and chunk_id == self.id:
            raise GeryonError(f"{self.id} cannot be a replica of itself")
        master = f"{host}!{chunk_id}"
        if master != self.master:
            if self.disk.writing:
                raise GeryonError(f"{self.id} has files open for writing; close them first")
            write_mark(self.mark, master)
            await self.stop_following()
            self.master = master
            self.start_following()
            await self.reregister()
        await wait_in_sync(self.follower, seconds)
        await self.publish()  # before answering: the registry has the fill it answers with
        process.stdout.write(f"in sync {self.chunk.log_id} {self.chunk.used}\n".encode())

    async def promote(self, process, caller, args) -> None:
        """`promote`: stop following and serve this replica as a master, for good."""
        need_role("promote", caller, self.id)
        no_arguments("promote", args)
        if not self.master:
            raise GeryonError(f"{self.id} is not a replica; it is a master already")
        was = self.master
        await self.stop_following()
        self.mark.unlink(missing_ok=True)
        self.master = None
        await self.reregister()
        process.stdout.write(f"master (was a replica of {was}) {self.chunk.log_id} "
                             f"{self.chunk.used}\n".encode())

    async def publish(self) -> None:
        """Tell the registry this chunk's fill now."""
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
        attrs = self.attrs()
        try:
            await self.node.registrar.update(self.name, {"used": attrs["used"],
                                                         "free": attrs["free"],
                                                         "log": attrs["log"]})
        except GeryonError as err:  # the registrar registers again, with the new fill
            log.warning("%s: could not update the registry: %s", self.id, err)

    # The disk's bulk interface, by SSH exec (docs/disk.md): a whole chunk image in or out,
    # which is how `geryon load` fills a disk and how a disk is copied whole.
    async def put_image(self, process, caller, args) -> None:
        need_role("image-put", caller, self.id)
        no_arguments("image-put", args)
        if self.refusal():
            raise GeryonError(self.refusal())
        await self.image_put(process)

    async def image_id(self, process, caller, args) -> None:
        """Say what the chunk holds now, as `LOGID LENGTH`: the log only grows and a
        compaction gives it a new id, so the pair names its content (rcpu caches by it)."""
        no_arguments("image-id", args)
        process.stdout.write(f"{self.chunk.log_id} {self.chunk.used}\n".encode())

    async def image_get(self, process, caller, args) -> None:
        """Write the chunk as it is now: the log is append-only, so a prefix is whole."""
        no_arguments("image-get", args)
        await self.send_log(process, 0, self.chunk.used)

    async def send_log(self, process, offset: int, end: int) -> None:
        """Write the chunk file's bytes from offset to end (a prefix of the log: whole)."""
        with open(self.path, "rb") as f:
            f.seek(offset)
            while offset < end:
                data = f.read(min(1 << 20, end - offset))
                if not data:
                    break
                process.stdout.write(data)
                await process.stdout.drain()
                offset += len(data)

    async def image_tail(self, process, caller, args) -> None:
        """`image-tail LOGID OFFSET [WAIT]`: a header `LOGID END`, then the log's bytes from
        OFFSET to END.  When the log id is LOGID and the log ends at OFFSET, wait up to WAIT
        seconds (at most 30) for it to grow first.  Any role may read a disk."""
        from geryon.disks.replica import LOG_ID, MAX_WAIT
        if not 2 <= len(args) <= 3 or not LOG_ID.fullmatch(args[0]):
            raise GeryonError("image-tail takes LOGID (32 hex digits) OFFSET [WAIT], e.g. "
                              "image-tail 0f3e...9a 4096 10")
        offset = int_argument("image-tail", "OFFSET", args[1], MAX_CAPACITY)
        wait = seconds_argument("image-tail", args[2] if len(args) > 2 else None, 0.0,
                                MAX_WAIT)
        if args[0] == self.chunk.log_id and self.chunk.used <= offset and wait:
            try:
                await asyncio.wait_for(self.grew.wait(), wait)
            except (asyncio.TimeoutError, TimeoutError):
                pass
        chunk = self.chunk  # a swap-in may come: answer from one log
        end = chunk.used
        process.stdout.write(f"{chunk.log_id} {end}\n".encode())
        if args[0] == chunk.log_id and offset < end:
            await self.send_log(process, offset, end)

    async def image_sum(self, process, caller, args) -> None:
        """`image-sum [END]`: `LOGID END SUM`, SUM the xxh3-64 of the chunk file's first END
        bytes (all of it by default): a replica of the same sum is a prefix of this log."""
        if len(args) > 1:
            raise GeryonError("image-sum takes at most one argument, END")
        end = int_argument("image-sum", "END", args[0], MAX_CAPACITY) if args \
            else self.chunk.used
        if end > self.chunk.used:
            raise GeryonError(f"{self.id} holds {self.chunk.used} bytes, fewer than {end}")
        chunk = self.chunk
        digest = await asyncio.to_thread(chunk.log_sum, end) if end > 1 << 22 \
            else chunk.log_sum(end)
        process.stdout.write(f"{chunk.log_id} {end} {digest}\n".encode())

    async def image_put(self, process) -> None:
        """Replace this (empty) chunk with the chunk image on stdin, checked whole first
        (geryon/chunkfs/image.py); the check runs in a thread, so the node goes on serving."""
        with IncomingImage(self.chunk) as incoming:
            while data := await process.stdin.read(1 << 20):
                incoming.write(data)
            image = await asyncio.to_thread(incoming.check)
            self.chunk = self.disk.chunk = incoming.install(image)
        self.changed()
        await self.publish()  # before answering: the loader sees the new fill at once
        process.stdout.write(f"{self.chunk.counts()[0]} files\n".encode())


def no_arguments(command: str, args: list[str]) -> None:
    if args:
        raise GeryonError(f"{command} takes no arguments (got {' '.join(args)[:80]!r})")


def need_role(command: str, caller, chunk_id: str) -> None:
    if not caller.may(WRITERS):
        raise GeryonError(f"{chunk_id}: permission denied; {command} needs role cpu or admin")


def int_argument(command: str, name: str, text: str, most: int) -> int:
    if not text.isdigit() or int(text) > most:
        raise GeryonError(f"{command}: {name} must be a number of bytes from 0 to {most} "
                          f"(got {text[:40]!r})")
    return int(text)


def seconds_argument(command: str, text: str | None, default: float, most: float) -> float:
    if text is None:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= most:  # NaN fails this too
        raise GeryonError(f"{command}: seconds must be from 0 to {most:g} (got {text[:40]!r})")
    return seconds


def read_mark(mark: Path) -> str | None:
    """The master a replica's mark file names (None: the chunk is no replica)."""
    try:
        words = mark.read_text().split()
    except FileNotFoundError:
        return None
    return words[1] if len(words) == 2 and words[0] == "replicaof" else None


def write_mark(mark: Path, master: str) -> None:
    """Keep `replicaof MASTER` beside the chunk, durably (written aside, then renamed)."""
    temp = mark.with_name(mark.name + ".new")
    with open(temp, "w") as f:
        f.write(f"replicaof {master}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, mark)


@dataclass
class CpuSettings:
    """What a node's cpu service needs: where its output chunks and scratch live."""

    state_dir: Path
    output_chunks: int = 2
    output_size: int = 64 << 20
    cache_dir: Path | None = None  # default: on tmpfs (/dev/shm) when there is one
    cache_limit: int = 2 << 30


@dataclass
class WorkerSettings:
    """What a node's Owen worker needs: its root (task scripts, work directories) and,
    if given, the scheduler's address (else GERYON_SCHED, the config, the registry)."""

    root: Path
    sched: str = ""
    install: tuple[str, ...] = ()  # task types to install from the package's library


class Node:
    """A node's chunk disks, cpu service and Owen worker, served and registered."""

    def __init__(self, chunks_dir: Path | None, *, name: str, config: Config | None = None,
                 identity: Identity | None = None, listen_host: str = "",
                 cpu: CpuSettings | None = None, worker: "WorkerSettings | None" = None):
        self.config = config or Config.load()
        self.identity = identity or Identity.load()
        self.keepalive = float(self.config.keepalive)
        self.chunks_dir = Path(chunks_dir) if chunks_dir else None
        self.name = name
        self.listen_host = listen_host
        self.registrar = Registrar(self.config, self.identity)
        self.chunks: list[ServedChunk] = []
        self.cpu_settings = cpu
        self.worker_settings = worker
        self.worker = None  # the Owen worker, once started
        self.cpu = None  # the CpuService, once started
        self.unprivileged = False  # whether blocks need a user name space (start() finds out)
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
            # before anything is registered: say plainly if it cannot be
            self.unprivileged = check_namespaces()
        await self.registrar.connect(wait=True)  # at boot the registry may not be up yet
        host = self.listen_host or self.registrar.local_host
        if self.chunks_dir is not None:
            await self._serve_chunks(self.chunks_dir, "chunk", host, cpu=False)
        if self.cpu_settings is not None:
            await self._start_cpu(host)
        if self.worker_settings is not None:
            self._start_worker()

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
            if served.master:
                served.start_following()

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
                              cache_dir=settings.cache_dir or default_cache_dir(
                                  Path(settings.state_dir)),
                              cache_limit=settings.cache_limit,
                              rc_files=(self.identity.directory / "gridrc.sh",),
                              unprivileged=self.unprivileged)
        self.cpu_server = Server(self.cpu.tree(), self.identity, keepalive=self.keepalive,
                                 commands=self.cpu.commands)
        await self.cpu_server.start(f"tcp!{host}!0")
        self.cpu_name = f"tcp!{self._named(host)}!{self.cpu_server.port}"
        await self.registrar.add(self.cpu_name, self.cpu.attrs())
        self.tasks.append(asyncio.ensure_future(self._keep_cpu_status()))
        log.info("cpu service on %s", self.cpu_name)

    def _start_worker(self) -> None:
        """An Owen worker on this node: it dials out to the scheduler, so it serves
        nothing and needs no port (geryon.owen.worker)."""
        from geryon.owen.worker import Worker, install_script
        settings = self.worker_settings
        root = Path(settings.root)
        root.mkdir(parents=True, exist_ok=True)
        for jobtype in settings.install:
            install_script(jobtype, root)
        self.worker = Worker(root, sched=settings.sched, name=self.name, config=self.config,
                             identity=self.identity)
        self.tasks.append(asyncio.ensure_future(self.worker.run()))
        log.info("worker %s in %s", self.name, root)

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
            await served.stop_following()
            await served.server.close()
            served.chunk.close()


def default_cache_dir(state_dir: Path) -> Path:
    """Where unpacked disks are kept: tmpfs when the machine has /dev/shm (making files
    there costs no disk writes), else the temporary directory; one place per state
    directory, since a starting node empties its cache and two nodes on one machine
    must not share one."""
    import hashlib
    import os
    import tempfile
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    tag = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    return base / f"geryon-{os.getuid()}" / tag
