"""Copy from a remote disk to local files: a whole disk as one chunk image (fast), or a
file or tree over SFTP."""

import os
import tempfile
from pathlib import Path

from geryon.chunkfs.chunk import Chunk
from geryon.chunkfs.remote import DiskError, run, walk
from geryon.ns.client import Client, explain


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
    count = 0
    with Chunk.open(image, readonly=True) as chunk:
        for entry in chunk.walk():
            if entry.is_dir:
                (dest / entry.path).mkdir(parents=True, exist_ok=True)
            else:
                place(dest, entry.path, chunk.read(entry.path), entry.mode, entry.mtime)
                count += 1
    return count


async def fetch(disk: Client, path: str, dest: str) -> int:
    """Copy disk:path to dest; return how many files were written."""
    dest = Path(dest)
    if not path:
        data = await run(disk, "image-get")
        with tempfile.NamedTemporaryFile(prefix="geryon-image-") as tmp:
            tmp.write(data)
            tmp.flush()
            dest.mkdir(parents=True, exist_ok=True)
            return unpack_image(Path(tmp.name), dest)
    sftp = await disk.main()
    try:
        attrs = await sftp.stat("/" + path)
    except Exception as err:
        raise explain(err, f"{disk.address}: {path}") from None
    if attrs.type != 2:
        target = dest / Path(path).name if dest.is_dir() else dest
        place(target.parent, target.name, await disk.read("/" + path), attrs.permissions,
              attrs.mtime)
        return 1
    count = 0
    root = dest / Path(path).name if dest.exists() else dest
    async for item, is_dir, item_attrs in walk(disk, path):
        relative = item[len(path) + 1:]
        if is_dir:
            (root / relative).mkdir(parents=True, exist_ok=True)
        else:
            place(root, relative, await disk.read("/" + item), item_attrs.permissions,
                  item_attrs.mtime)
            count += 1
    return count
