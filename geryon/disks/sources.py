"""What `geryon load` loads: files from directories, tar files and plain files, as Items
that can be read (and compressed) in another process."""

import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import zstandard

from geryon.chunkfs import record
from geryon.chunkfs.errors import ChunkPathError
from geryon.chunkfs.paths import normalise
from geryon.chunkfs.record import HEADER_SIZE
from geryon.disks.errors import LoadError

SPLIT_MARGIN = 0.9  # a piece of a split file is at most this share of a disk, before zstd


@dataclass
class Item:
    """One file to load: where it goes on the disk, and where its bytes come from (a file,
    a tar member, or bytes in hand for a piece of a split file)."""

    path: str
    size: int
    mode: int = 0o644
    mtime: float | None = None
    file: str = ""
    member: str = ""
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.member:
            return _tar_member(self.file, self.member)
        with open(self.file, "rb") as f:
            return f.read()


_tars: dict = {}  # per process: tar file -> (TarFile, {member name: TarInfo})


def _tar_member(path: str, name: str) -> bytes:
    if path not in _tars:
        tar = tarfile.open(path)
        _tars[path] = (tar, {m.name: m for m in tar.getmembers()})
    tar, members = _tars[path]
    return tar.extractfile(members[name]).read()


def tar_path(name: str) -> str:
    """A tar member's name as a path on the disk: `./a/b` and `/a/b` are `a/b`."""
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def gather(sources, skipped: list | None = None) -> list[Item]:
    """The files to load from directories (paths relative to them), tar files and files.
    What is not a plain file (links, to directories too, devices, FIFOs) is left out and
    named in `skipped`; a name the disk cannot hold (`..` in a tar) is a LoadError."""
    skipped = [] if skipped is None else skipped
    items = []
    for source in map(Path, sources):
        if source.is_dir():
            items.extend(_walk(source, skipped))
        elif source.is_file() and tarfile.is_tarfile(source):
            with tarfile.open(source) as tar:
                for member in tar:
                    if member.isreg():
                        path = _disk_path(tar_path(member.name), f"{source}:{member.name}")
                        items.append(Item(path, member.size, member.mode & 0o777,
                                          member.mtime, file=os.fspath(source),
                                          member=member.name))
                    elif not member.isdir():
                        skipped.append(f"{source}:{member.name}")
        elif source.is_file():
            st = source.stat()
            items.append(Item(source.name, st.st_size, st.st_mode & 0o777, st.st_mtime,
                              file=os.fspath(source)))
        else:
            raise LoadError(f"{source}: no such file or directory")
    return items


def _walk(top: Path, skipped: list) -> list[Item]:
    items = []
    for root, dirs, files in os.walk(top):
        # os.walk lists a link to a directory among the directories and does not follow
        # it: it is left out like any other link, and said so.
        for name in [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            dirs.remove(name)
            skipped.append(os.path.join(root, name))
        dirs.sort()
        prefix = os.path.relpath(root, top)
        prefix = "" if prefix == "." else prefix.replace(os.sep, "/") + "/"
        for name in sorted(files):
            full = os.path.join(root, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                items.append(Item(_disk_path(prefix + name, full), st.st_size,
                                  st.st_mode & 0o777, st.st_mtime, file=full))
            else:
                skipped.append(full)
    return items


def _disk_path(path: str, source: str) -> str:
    """The path a file takes on the disk, or a LoadError naming where it came from."""
    try:
        canonical = normalise(path)
    except ChunkPathError as err:
        reason = str(err)
    else:
        if canonical:
            return canonical
        reason = f"path {path!r} names the disk's root, not a file"
    raise LoadError(f"{source}: cannot be loaded: {reason}; rename it, or leave it out of "
                    "the sources")


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
        pieces.append(Item(f"{item.path}.{len(pieces):03d}", len(piece), item.mode,
                           item.mtime, data=piece))
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


_compressors: dict = {}  # per process: level -> ZstdCompressor


def prepare(items: list[Item], level: int) -> list[tuple[int, int, bytes]]:
    """Read and compress items (in a worker process): (size, flags, body) for each, as
    Chunk.write(packed=...) takes them."""
    compressor = _compressors.setdefault(level, zstandard.ZstdCompressor(level=level))
    out = []
    for item in items:
        data = item.read()
        out.append((len(data), *record.pack(data, compressor)))
    return out
