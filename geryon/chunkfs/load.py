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
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from geryon.chunkfs.chunk import Chunk
from geryon.chunkfs.errors import ChunkFull
from geryon.chunkfs.record import HEADER_SIZE
from geryon.errors import GeryonError
from geryon.ndb.database import Database
from geryon.ndb.refresh import Refresher, disks_of
from geryon.ns.client import Client

SPLIT_MARGIN = 0.9  # a piece of a split file is at most this share of a disk, before zstd


class LoadError(GeryonError):
    """Files that cannot be loaded as asked."""


@dataclass
class Item:
    """One file to load: where it goes on the disk and how to get its bytes."""

    path: str
    size: int
    read: object  # () -> bytes
    mode: int = 0o644
    mtime: float | None = None


@dataclass
class Target:
    """An empty chunk that will become disk `name` (a new disk is named when filled)."""

    name: str
    host: str
    chunk: str
    addr: str
    capacity: int
    named: bool  # the ndb file names it already


def gather(sources) -> list[Item]:
    """The files to load from directories (paths relative to them), tar files and files."""
    items = []
    for source in map(Path, sources):
        if source.is_dir():
            for root, dirs, files in os.walk(source):
                dirs.sort()
                for name in sorted(files):
                    path = Path(root) / name
                    if path.is_file() and not path.is_symlink():
                        st = path.stat()
                        items.append(Item(path.relative_to(source).as_posix(), st.st_size,
                                          path.read_bytes, st.st_mode & 0o777, st.st_mtime))
        elif source.is_file() and tarfile.is_tarfile(source):
            tar = tarfile.open(source)
            for member in tar:
                if member.isreg():
                    items.append(Item(tar_path(member.name), member.size,
                                      lambda m=member, t=tar: t.extractfile(m).read(),
                                      member.mode & 0o777, member.mtime))
        elif source.is_file():
            st = source.stat()
            items.append(Item(source.name, st.st_size, source.read_bytes, st.st_mode & 0o777,
                              st.st_mtime))
        else:
            raise LoadError(f"{source}: no such file or directory")
    return items


def tar_path(name: str) -> str:
    """A tar member's name as a path on the disk: `./a/b` and `/a/b` are `a/b`."""
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def split_lines(item: Item, limit: int) -> list[Item]:
    """Cut a file at line boundaries into pieces of at most limit bytes: PATH.000, ..."""
    data, pieces, start = item.read(), [], 0
    while start < len(data):
        end = min(start + limit, len(data))
        if end < len(data):
            cut = data.rfind(b"\n", start, end)
            if cut < start:
                raise LoadError(f"{item.path}: a line longer than {limit} bytes cannot be split "
                                "at a line boundary")
            end = cut + 1
        piece = data[start:end]
        pieces.append(Item(f"{item.path}.{len(pieces):03d}", len(piece),
                           lambda p=piece: p, item.mode, item.mtime))
        start = end
    return pieces


def check_sizes(items: list[Item], capacity: int, split: bool) -> list[Item]:
    """Refuse (or split) files larger than a disk, before anything is loaded."""
    room = capacity - HEADER_SIZE - 4096
    out = []
    for item in items:
        if item.size <= room:
            out.append(item)
        elif split:
            out.extend(split_lines(item, int(capacity * SPLIT_MARGIN)))
        else:
            raise LoadError(f"{item.path} is {item.size} bytes, larger than a disk of "
                            f"{capacity} bytes; split it, or load with --split-lines")
    return out


def pack(items: list[Item], start: int, capacity: int, directory: str) -> tuple[Path, int, int]:
    """Write items[start:] into a new chunk image until one does not fit.

    Returns (image path, index of the first item not packed, bytes of file data packed)."""
    fd, name = tempfile.mkstemp(prefix="geryon-load-", dir=directory)
    os.close(fd)
    os.unlink(name)
    image = Path(name)
    packed = 0
    with Chunk.create(image, capacity, sync=False) as chunk:
        i = start
        while i < len(items):
            item = items[i]
            try:
                chunk.write(item.path, item.read(), item.mode, item.mtime)
            except ChunkFull:
                if i == start:
                    raise LoadError(f"{item.path} does not fit on an empty disk of {capacity} "
                                    "bytes even compressed") from None
                break
            packed += item.size
            i += 1
    return image, i, packed


async def targets(registry: Client, db: Database, app: str) -> tuple[list[Target], int]:
    """Empty disks to fill, in order: named ones of the app first, then free chunks; and
    the number the next new disk of the app gets."""
    from geryon.registry.client import query
    chunks = {(s.attrs.get("host"), s.attrs.get("id")): s
              for s in await query(registry, "resource", "kfs")}
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
        f.write(f"\nname={target.name} kfs\n\tmaster={target.host}!{target.chunk}\n")
        f.flush()
        os.fsync(f.fileno())


@dataclass
class Loaded:
    disk: str
    host: str
    files: int
    bytes: int


async def load(registry: Client, sources, app: str, ndb_path: Path, *, split: bool = False,
               identity=None, keepalive=1.0, progress=None) -> list[Loaded]:
    """Load the sources into disks of app; return what went where."""
    from geryon.chunkfs.remote import run
    if not re.fullmatch(r"[A-Za-z0-9_-]+", app):
        raise LoadError(f"application name {app!r}: use letters, digits, '-' and '_' only")
    db = Database(ndb_path)
    todo, number = await targets(registry, db, app)
    if not todo:
        raise LoadError("no empty chunks are free for new disks (registered, and not named "
                        "for another disk in the ndb file): add some with `geryon node "
                        "--new-chunks N`")
    items = check_sizes(gather(sources), min(t.capacity for t in todo), split)
    if not items:
        raise LoadError("nothing to load: the sources hold no files")
    done: list[Loaded] = []
    spare = iter(todo)
    numbers = iter(range(number, number + len(todo)))

    async def send(target: Target, image: Path, count: int, packed: int) -> Loaded:
        """Fill target with the image; a chunk written since we looked is passed over."""
        from geryon.chunkfs.remote import run
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
                    target = next((t for t in spare if t.capacity == target.capacity), None)
                    if target is None:
                        raise LoadError(f"{err}; and no other empty chunk is left") from None
        finally:
            image.unlink(missing_ok=True)
        if not target.named:
            target.name = f"d{next(numbers)}.{app}"
            name_disk(ndb_path, target)
        if progress:
            progress(packed)
        return Loaded(target.name, target.host, count, packed)

    scratch = tempfile.mkdtemp(prefix="geryon-load-")
    start = 0
    try:
        upload = None
        for target in spare:
            if start >= len(items):
                break
            image, next_start, packed = await asyncio.to_thread(
                pack, items, start, target.capacity, scratch)
            if upload is not None:
                done.append(await upload)  # one send at a time: disks are named in order
            upload = asyncio.ensure_future(send(target, image, next_start - start, packed))
            start = next_start
        if upload is not None:
            done.append(await upload)
    finally:
        for leftover in Path(scratch).iterdir():
            leftover.unlink()
        os.rmdir(scratch)
    await Refresher(registry, ndb_path).refresh()  # usable even if the load stopped short
    if start < len(items):
        raise LoadError(f"ran out of empty chunks with {len(items) - start} files left "
                        f"(from {items[start].path}); the {len(done)} disks filled are named "
                        "and registered; add chunks (geryon node --new-chunks N) and load "
                        "the rest")
    return done
