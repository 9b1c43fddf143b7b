"""`geryon load`: split local files across new disks of an application.

Theory of operation.  Files are packed, in order, into a chunk image made here (a scratch
chunk of the target's capacity, so what fits is exactly what the chunk format says fits,
compressed once); the image is sent whole to an empty chunk on a node (`image-put`, which
checks it and swaps it in atomically), and, at the end, `refresh` puts the disks in the
registry.  Packing the next image overlaps sending the last.  plan.plan_load chooses the
chunks: empty disks the ndb file already names for the application first, then empty
unnamed chunks round-robin across nodes.

A load that stops short can be run again and completes.  A new disk is named in the ndb
file before its image is sent, and unnamed again only when its node refused the image
(so nothing was written).  When the send was cut off instead (the node died, the network
went), the name stays: the next run fills that disk first if its chunk is still empty,
and lists it if not.  Files already on a disk of the application (same path, size and
modification time) are passed over, so nothing is loaded twice.

Replicas: once every master is filled, each new disk gets `replicas` copies on empty chunks
of other nodes (plan.place_replicas), named in the ndb file (`d0.app.r1`, marked
`replica`, and `replica=d0.app.r1` on the master) and told to follow their masters; the
load waits until every copy has caught up before it refreshes and reports.  replicas=None
means one wherever there are spare chunks on another node, and says so when there are not;
a number given is required, and a load short of chunks for it fails after the masters are
in, naming the disks without their replicas.
"""

import asyncio
import itertools
import multiprocessing
import os
import tempfile
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from geryon.chunkfs.chunk import Chunk
from geryon.chunkfs.errors import ChunkFull
from geryon.disks.cluster import Naming, named_disks, services
from geryon.disks.errors import DiskError, LoadError
from geryon.disks.plan import Target, app_pattern, not_yet_loaded, place_replicas, plan_load
from geryon.disks.refresh import Refresher
from geryon.disks.remote import run, walk
from geryon.disks.sources import Item, check_sizes, prepare
from geryon.errors import GeryonError
from geryon.ndb.database import Database
from geryon.ns.client import Client

DEFAULT_LOAD_LEVEL = 1  # zstd -1: fast, as `tar | zstd -1`; higher levels fit more per disk
BATCH = 256  # files a worker reads and compresses at a time
AHEAD = 4  # batches handed out ahead of the packing


@dataclass
class Loaded:
    """A disk filled by a load."""

    disk: str
    host: str
    files: int
    bytes: int
    chunk: str = ""
    replicas: list = field(default_factory=list)  # (name, host) of each replica made


@dataclass
class LoadReport:
    """What a load did: the disks it filled, and how many files were on the application's
    disks already (and so passed over)."""

    disks: list[Loaded] = field(default_factory=list)
    already: int = 0
    short: list[str] = field(default_factory=list)  # disks with fewer replicas than asked


async def files_on(chunks, identity, keepalive) -> set:
    """(path, size, mtime) of every file on the chunks of (NamedDisk, live chunk) pairs."""
    async def one(chunk) -> set:
        async with await Client.connect(chunk.name, identity, keepalive=keepalive) as disk:
            return {(path, attrs.size, attrs.mtime) async for path, directory, attrs
                    in walk(disk) if not directory}
    found = await asyncio.gather(*(one(chunk) for _, chunk in chunks))
    return set().union(*found)


async def load(registry: Client, items: list[Item], app: str, ndb_path: Path, *,
               split: bool = False, level: int = DEFAULT_LOAD_LEVEL, identity=None,
               keepalive=1.0, progress=None, replicas: int | None = None) -> LoadReport:
    """Load files (from gather()) into disks of app, passing over those already on them;
    return what went where.  A LoadError names what was not loaded."""
    app_pattern(app)
    if not items:
        raise LoadError("nothing to load: the sources hold no files")
    live = await services(registry, "resource", "kfs")
    chosen = plan_load(named_disks(Database(ndb_path)), live, app)
    if replicas is None and len({c.attrs.get("host") for c in live}) < 2:
        replicas = 0  # by default, replicas only where there is another node to hold them
    sizes = [t.capacity for t in chosen.targets] or \
        [int(c.attrs["size"]) for _, c in chosen.filled]
    if sizes:
        items = check_sizes(items, min(sizes), split)
    present = await files_on(chosen.filled, identity, keepalive) if chosen.filled else set()
    todo = not_yet_loaded(items, present)
    report = LoadReport(already=len(items) - len(todo))
    if progress and report.already:
        progress(sum(i.size for i in items) - sum(i.size for i in todo))
    if not todo:
        return report
    if not chosen.targets:
        raise LoadError("no empty chunks are free for new disks (registered, and not named "
                        "for another disk in the ndb file): add some with `geryon node "
                        "--new-chunks N`")
    sender = Sender(app, chosen.targets, chosen.next_number, Naming(ndb_path), identity,
                    keepalive)
    failure = None
    try:
        await sender.fill(Packer(todo, level, progress), report)
    except LoadError as err:
        failure = err  # what was filled is registered all the same, and usable at once
    if failure is None and report.disks and replicas != 0:
        try:
            await copy_disks(report, list(sender.spare), replicas, ndb_path, identity,
                             keepalive)
        except GeryonError as err:
            failure = LoadError(f"{err}. The disks themselves are filled and registered")
    try:
        await Refresher(registry, ndb_path).refresh()
    except GeryonError as err:
        if failure is None:
            raise
        raise LoadError(f"{failure} (and refresh failed: {err})") from None
    if failure is not None:
        raise failure
    return report


async def copy_disks(report: LoadReport, spare: list[Target], replicas: int | None,
                     ndb_path: Path, identity, keepalive: float) -> None:
    """Give each disk the load filled its replicas, and wait until they are in sync."""
    from geryon.disks.replicas import add_replicas
    count = 1 if replicas is None else replicas
    chosen, short = place_replicas([(d.disk, d.host, []) for d in report.disks], spare, count)
    if short and replicas is not None:
        raise LoadError("not enough empty chunks for the replicas asked for: "
                        + "; ".join(short) + ". Add chunks (geryon node --new-chunks N) and "
                        "run `geryon disks replicate DISK` for each")
    report.short = short
    named = {d.name: d for d in named_disks(Database(ndb_path))}
    placed = await add_replicas(ndb_path, {k: v for k, v in chosen.items() if v}, named,
                                identity, keepalive)
    by_disk = {d.disk: d for d in report.disks}
    for copy in placed:
        by_disk[copy.master].replicas.append((copy.name, copy.host))


class Sender:
    """Sends images to the targets in order, naming new disks as it goes."""

    def __init__(self, app: str, targets: list[Target], number: int, naming: Naming,
                 identity, keepalive: float):
        self.app, self.naming = app, naming
        self.spare = iter(targets)
        self.number = number
        self.identity, self.keepalive = identity, keepalive

    async def fill(self, packer: "Packer", report: LoadReport) -> None:
        """Pack and send until every item is on a disk; LoadError if that cannot be."""
        upload = None
        try:
            for target in self.spare:
                if packer.finished:
                    self.spare = itertools.chain([target], self.spare)  # still spare
                    break
                first = packer.done
                image, count, packed = await asyncio.to_thread(packer.pack, target.capacity)
                if upload is not None:
                    report.disks.append(await upload)  # one send at a time, named in order
                upload = asyncio.ensure_future(self.send(target, image, first, count, packed))
            if upload is not None:
                report.disks.append(await upload)
                upload = None
        except SendFailed as failed:
            pending = (f"{failed.pending} (named in the ndb file: the next run fills it "
                       "if it is empty and lists it if not) and " if failed.pending else "")
            raise LoadError(f"{failed.reason}. Not written: {pending}the "
                            f"{len(packer.items) - failed.first} files from "
                            f"{packer.items[failed.first].path} on. {self.written(report)} "
                            "Run the same load again to load the rest: files already on "
                            "disks of the application are passed over") from None
        finally:
            if upload is not None:
                upload.cancel()
                await asyncio.gather(upload, return_exceptions=True)
            packer.close()
        if not packer.finished:
            left = packer.items[packer.done]
            raise LoadError(f"ran out of empty chunks with {len(packer.items) - packer.done} "
                            f"files left (from {left.path}). {self.written(report)} Add "
                            "chunks (geryon node --new-chunks N) and run the same load again")

    @staticmethod
    def written(report: LoadReport) -> str:
        if not report.disks:
            return "No disk was filled."
        return (f"Filled, named and registered: "
                f"{', '.join(d.disk for d in report.disks)}.")

    async def send(self, target: Target, image: Path, first: int, count: int,
                   packed: int) -> Loaded:
        """Fill a target with the image; a chunk written since it was chosen is passed over
        for the next empty one of the same capacity."""
        try:
            while True:
                span = None
                if not target.named:
                    target.name = f"d{self.number}.{self.app}"
                    span = self.naming.name(target)
                try:
                    refusal = await self.put(target, image)
                except (GeryonError, OSError) as err:  # cut off: the name stays, see above
                    raise SendFailed(f"sending {target.name} to {target.host} failed: {err}",
                                     first, target.name) from None
                if refusal is None:
                    break
                if span:  # refused, so nothing was written: the name goes again
                    self.naming.take_back(span)
                    target.name = ""
                refused, holds_files = refusal
                if not holds_files:
                    raise SendFailed(f"{target.host}!{target.chunk} refused the image: "
                                     f"{refused}", first)
                target = next((t for t in self.spare if t.capacity >= target.capacity), None)
                if target is None:
                    raise SendFailed(f"{refused}; it was written to since the load chose it, "
                                     "and no other empty chunk is left", first)
        finally:
            image.unlink(missing_ok=True)
        if not target.named:
            self.number += 1
        return Loaded(target.name, target.host, count, packed, target.chunk)

    async def put(self, target: Target, image: Path):
        """Send the image: None once the chunk holds it, or (the node's refusal, whether
        the chunk holds files) when the node refused it and so wrote nothing."""
        async with await Client.connect(target.addr, self.identity,
                                        keepalive=self.keepalive) as disk:
            try:
                await run(disk, "image-put", image.read_bytes())
                return None
            except DiskError as refused:
                return refused, bool(await disk.listdir())


class SendFailed(Exception):
    """An image that did not reach its disk: why, the index of its first item, and the
    disk named for it that may or may not hold it."""

    def __init__(self, reason: str, first: int, pending: str = ""):
        super().__init__(reason)
        self.reason, self.first, self.pending = reason, first, pending


class Packer:
    """Fills chunk images with items in order.  Worker processes read and compress the
    files a batch at a time, ahead of need; this side only appends the records, so the
    two cores both work.  What does not fit one image starts the next, compressed once."""

    def __init__(self, items: list[Item], level: int, progress=None):
        self.items = items
        self.progress = progress  # called with bytes packed, a batch at a time
        self.level = level
        self.directory = tempfile.mkdtemp(prefix="geryon-load-")  # images being packed
        # forkserver: workers are not forked from a process with threads and an event loop
        self.pool = ProcessPoolExecutor(min(2, os.cpu_count() or 1),
                                        mp_context=multiprocessing.get_context("forkserver"))
        self.batches = deque()  # futures of prepare(), in order
        self.next_batch = 0  # first item not yet handed to a worker
        self.ready = deque()  # (item, packed) in order, prepared
        self.done = 0  # items packed into images

    def _fill(self) -> None:
        while len(self.batches) < AHEAD and self.next_batch < len(self.items):
            batch = self.items[self.next_batch:self.next_batch + BATCH]
            self.batches.append((batch, self.pool.submit(prepare, batch, self.level)))
            self.next_batch += len(batch)

    def _next(self):
        if not self.ready:
            self._fill()
            if not self.batches:
                return None
            batch, future = self.batches.popleft()
            self.ready.extend(zip(batch, future.result()))
            self._fill()
        return self.ready[0]

    def pack(self, capacity: int) -> tuple[Path, int, int]:
        """Make the next image: (its path, how many items, bytes of file data)."""
        fd, name = tempfile.mkstemp(prefix="geryon-load-", dir=self.directory)
        os.close(fd)
        os.unlink(name)
        image, count, size, reported = Path(name), 0, 0, 0
        with Chunk.create(image, capacity, sync=False, level=self.level) as chunk:
            while (head := self._next()) is not None:
                item, packed = head
                try:
                    chunk.write(item.path, None, item.mode, item.mtime, packed=packed)
                except ChunkFull:
                    if count == 0:
                        raise LoadError(f"{item.path} does not fit on an empty disk of "
                                        f"{capacity} bytes even compressed") from None
                    break
                self.ready.popleft()
                count, size = count + 1, size + item.size
                if self.progress and count % BATCH == 0:
                    self.progress(size - reported)
                    reported = size
        if self.progress:
            self.progress(size - reported)
        self.done += count
        return image, count, size

    @property
    def finished(self) -> bool:
        return self.done >= len(self.items)

    def close(self) -> None:
        for _, future in self.batches:
            future.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)
        for leftover in Path(self.directory).iterdir():
            leftover.unlink()
        os.rmdir(self.directory)


