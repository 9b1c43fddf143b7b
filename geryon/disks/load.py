"""`geryon load`: split local files across new disks of an application.

Theory of operation.  Files are packed, in order, into a chunk image made here (a scratch
chunk of the target's capacity, so what fits is exactly what the chunk format says fits,
compressed once); the image is sent whole to an empty chunk on a node (`image-put`, which
checks it and swaps it in atomically), named `dN.APP` in the ndb file, and, at the end,
`refresh` puts the disks in the registry.  Packing the next image overlaps sending the
last.  Empty disks the ndb file already names for the application are filled first; then
empty unnamed chunks, taken round-robin across nodes so the disks spread out.
"""

import asyncio
import multiprocessing
import os
import re
import tempfile
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from geryon.chunkfs.chunk import Chunk
from geryon.chunkfs.errors import ChunkFull
from geryon.chunkfs.record import HEADER_SIZE
from geryon.disks.sources import Item, LoadError, check_sizes, prepare
from geryon.errors import GeryonError
from geryon.ndb import Entry, format_entry
from geryon.ndb.database import Database
from geryon.disks.refresh import Refresher, disks_of, live_chunks
from geryon.ns.client import Client

DEFAULT_LOAD_LEVEL = 1  # zstd -1: fast, as `tar | zstd -1`; higher levels fit more per disk
BATCH = 256  # files a worker reads and compresses at a time
AHEAD = 4  # batches handed out ahead of the packing


@dataclass
class Target:
    """An empty chunk that will become disk `name` (a new disk is named when filled)."""

    name: str
    host: str
    chunk: str
    addr: str
    capacity: int
    named: bool  # the ndb file names it already


class Packer:
    """Fills chunk images with items in order.  Worker processes read and compress the
    files a batch at a time, ahead of need; this side only appends the records, so the
    two cores both work.  What does not fit one image starts the next, compressed once."""

    def __init__(self, items: list[Item], level: int, directory: str, progress=None):
        self.items = items
        self.progress = progress  # called with bytes packed, a batch at a time
        self.level = level
        self.directory = directory
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


async def targets(registry: Client, db: Database, app: str) -> tuple[list[Target], int]:
    """Empty disks to fill, in order: named ones of the app first, then free chunks; and
    the number the next new disk of the app gets."""
    from geryon.registry.client import query
    chunks = live_chunks(await query(registry, "resource", "kfs"))
    named_disks = disks_of(db.entries()) if Path(db.path).exists() else []
    named = {(d.host, d.chunk) for d in named_disks}
    pattern = re.compile(rf"d(\d+)\.{re.escape(app)}$")

    def empty(service):
        return int(service.attrs.get("used", HEADER_SIZE + 1)) <= HEADER_SIZE

    out = []
    numbers = []
    for disk in named_disks:
        match = pattern.fullmatch(disk.name)
        if not match:
            continue
        numbers.append(int(match.group(1)))
        service = chunks.get((disk.host, disk.chunk))
        if service is not None and empty(service):
            out.append((int(match.group(1)), Target(disk.name, disk.host, disk.chunk,
                                                    service.name, int(service.attrs["size"]),
                                                    True)))
    out = [t for _, t in sorted(out, key=lambda p: p[0])]
    free = [s for key, s in chunks.items() if key not in named and empty(s)]
    def order(service):
        number = re.fullmatch(r"chunk(\d+)", service.attrs.get("id", ""))
        return (int(number.group(1)) if number else 0, service.attrs.get("host", ""))

    by_host: dict[str, list] = {}
    for service in sorted(free, key=order):
        by_host.setdefault(service.attrs["host"], []).append(service)
    spread = []
    while any(by_host.values()):
        for host in sorted(by_host):
            if by_host[host]:
                spread.append(by_host[host].pop(0))
    for service in spread:
        out.append(Target("", service.attrs["host"], service.attrs["id"], service.name,
                          int(service.attrs["size"]), False))
    return out, max(numbers, default=-1) + 1


def name_disk(ndb_path: Path, target: Target) -> None:
    """Append the disk's entry to the ndb file (made if need be), durably."""
    ndb_path.parent.mkdir(parents=True, exist_ok=True)
    with open(ndb_path, "a") as f:
        gap = "\n" if f.tell() else ""
        f.write(gap + format_entry(Entry([[("name", target.name), ("kfs", "")],
                                          [("master", f"{target.host}!{target.chunk}")]])))
        f.flush()
        os.fsync(f.fileno())


@dataclass
class Loaded:
    disk: str
    host: str
    files: int
    bytes: int


async def load(registry: Client, items: list[Item], app: str, ndb_path: Path, *,
               split: bool = False, level: int = DEFAULT_LOAD_LEVEL, identity=None,
               keepalive=1.0, progress=None) -> list[Loaded]:
    """Load files (from gather()) into disks of app; return what went where."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", app):
        raise LoadError(f"application name {app!r}: use letters, digits, '-' and '_' only")
    db = Database(ndb_path)
    todo, number = await targets(registry, db, app)
    if not todo:
        raise LoadError("no empty chunks are free for new disks (registered, and not named "
                        "for another disk in the ndb file): add some with `geryon node "
                        "--new-chunks N`")
    items = check_sizes(items, min(t.capacity for t in todo), split)
    if not items:
        raise LoadError("nothing to load: the sources hold no files")
    done: list[Loaded] = []
    spare = iter(todo)
    numbers = iter(range(number, number + len(todo)))

    async def send(target: Target, image: Path, count: int, packed: int) -> Loaded:
        """Fill target with the image; a chunk written since we looked is passed over."""
        from geryon.disks.remote import run
        try:
            while True:
                try:
                    async with await Client.connect(target.addr, identity,
                                                    keepalive=keepalive) as disk:
                        await run(disk, "image-put", image.read_bytes())
                    break
                except GeryonError as err:
                    if "is not empty" not in str(err):
                        raise
                    target = next((t for t in spare if t.capacity >= target.capacity), None)
                    if target is None:
                        raise LoadError(f"{err}; and no other empty chunk is left") from None
        finally:
            image.unlink(missing_ok=True)
        if not target.named:
            target.name = f"d{next(numbers)}.{app}"
            name_disk(ndb_path, target)
        return Loaded(target.name, target.host, count, packed)

    scratch = tempfile.mkdtemp(prefix="geryon-load-")
    packer = Packer(items, level, scratch, progress)
    try:
        upload = None
        for target in spare:
            if packer.finished:
                break
            image, count, packed = await asyncio.to_thread(packer.pack, target.capacity)
            if upload is not None:
                done.append(await upload)  # one send at a time: disks are named in order
            upload = asyncio.ensure_future(send(target, image, count, packed))
        if upload is not None:
            done.append(await upload)
    finally:
        packer.close()
        for leftover in Path(scratch).iterdir():
            leftover.unlink()
        os.rmdir(scratch)
    await Refresher(registry, ndb_path).refresh()  # usable even if the load stopped short
    if not packer.finished:
        left = items[packer.done]
        raise LoadError(f"ran out of empty chunks with {len(items) - packer.done} files left "
                        f"(from {left.path}); the {len(done)} disks filled are named "
                        "and registered; add chunks (geryon node --new-chunks N) and load "
                        "the rest")
    return done
