"""Copy from a remote disk to local files: a whole disk as one chunk image (fast), or a
file or tree over SFTP."""

import asyncio
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from geryon.chunkfs.chunk import Chunk
from geryon.disks.errors import DiskError
from geryon.disks.names import split_spec
from geryon.disks.remote import dial_disk, run, walk
from geryon.ns.client import Client, is_dir


def place(dest: Path, relative: str, data: bytes, mode: int | None, mtime: float | None):
    """Write one file under dest, refusing names that would climb out of it."""
    target = (dest / relative).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise DiskError(f"refusing {relative!r}: it would land outside {dest}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    if mode is not None:
        os.chmod(target, mode & 0o777)
    if mtime is not None:
        os.utime(target, (mtime, mtime))


def unpack_image(image: Path, dest: Path) -> int:
    """Write every file of a chunk image under dest.  The chunk format already refuses
    paths that climb out, so directories are made once each and files written directly."""
    count = 0
    made = set()
    top = os.fspath(dest)
    with Chunk.open(image, readonly=True) as chunk:
        for entry in chunk.walk():
            target = os.path.join(top, entry.path)
            if entry.is_dir:
                if target not in made:
                    os.makedirs(target, exist_ok=True)
                    made.add(target)
                continue
            parent = os.path.dirname(target)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, entry.mode & 0o777)
            with os.fdopen(fd, "wb") as f:
                f.write(chunk.read(entry.path))
            os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns))
            count += 1
    return count


async def fetch_all(registry: Client, specs, dest: str, *, identity=None,
                    keepalive: float = 1.0) -> int:
    """Copy each DISK[:PATH] to dest; return how many files were written.

    Whole disks are fetched together and unpacked in a pool of processes (unpacking is
    Python work per file, so threads would share one core); paths go one by one over SFTP."""
    wanted = [split_spec(spec) for spec in specs]
    if len(wanted) > 1 and Path(dest).exists() and not Path(dest).is_dir():
        raise DiskError(f"{dest} is not a directory; give a directory to copy several into")
    try:
        return await _fetch_all(registry, wanted, dest, identity, keepalive)
    except OSError as err:
        raise DiskError(f"cannot write under {dest}: {err.strerror or err} "
                        f"({err.filename or dest})") from None


async def _fetch_all(registry, wanted, dest, identity, keepalive) -> int:
    whole = [name for name, path in wanted if not path]
    count = 0
    if whole:
        Path(dest).mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryDirectory(prefix="geryon-get-") as scratch, \
                ProcessPoolExecutor(min(len(whole), os.cpu_count() or 2)) as pool:

            async def one(name: str) -> int:
                async with await dial_disk(registry, name, identity, keepalive) as disk:
                    image = Path(scratch) / name
                    await run(disk, "image-get", stdout=image)
                return await loop.run_in_executor(pool, unpack_image, image, Path(dest))

            count += sum(await asyncio.gather(*(one(name) for name in whole)))
    for name, path in wanted:
        if path:
            async with await dial_disk(registry, name, identity, keepalive) as disk:
                count += await fetch(disk, path, dest)
    return count


async def fetch(disk: Client, path: str, dest: str) -> int:
    """Copy the file or tree disk:path to dest over SFTP; return how many files."""
    dest = Path(dest)
    attrs = await disk.stat("/" + path)
    if not is_dir(attrs):
        target = dest / Path(path).name if dest.is_dir() else dest
        place(target.parent, target.name, await disk.read("/" + path), attrs.permissions,
              attrs.mtime)
        return 1
    count = 0
    root = dest / Path(path).name if dest.exists() else dest
    async for item, directory, item_attrs in walk(disk, path):
        relative = item[len(path) + 1:]
        if directory:
            (root / relative).mkdir(parents=True, exist_ok=True)
        else:
            place(root, relative, await disk.read("/" + item), item_attrs.permissions,
                  item_attrs.mtime)
            count += 1
    return count
