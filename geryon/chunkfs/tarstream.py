"""Chunks as tar streams: export a disk's tree as a tar, import a tar into a disk.

Streams only (tarfile's "w|" and "r|*" modes), so export can write to a pipe and import read
from one, plain or compressed. Import is atomic (Chunk.atomic): a tar that fails half way (a
path that escapes the disk, a file that does not fit, a broken archive) leaves the chunk as
it was. Tar holds more kinds of thing than a chunk: hard links become copies of the file
they link to; symbolic links, devices and FIFOs are skipped and listed.
"""

import io
import lzma
import tarfile
import zlib
from dataclasses import dataclass, field

from geryon.chunkfs.errors import ChunkError
from geryon.chunkfs.paths import ROOT, join, normalise

_SKIPPED = {tarfile.SYMTYPE: "a symbolic link", tarfile.CHRTYPE: "a character device",
            tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO"}


@dataclass
class ImportResult:
    """What import_tar did: files and directories made, and members skipped (with why)."""

    files: int = 0
    dirs: int = 0
    skipped: list = field(default_factory=list)


def export_tar(chunk, fileobj, top=ROOT):
    """Write everything beneath directory `top` to `fileobj` as a PAX tar stream.

    Names are relative to `top`; directories come before what they hold, names in order.
    Returns the number of members written.
    """
    top = normalise(top)
    count = 0
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in chunk.walk(top):
            info = tarfile.TarInfo(entry.path[len(top) + 1:] if top else entry.path)
            info.mode, info.mtime = entry.mode, entry.mtime
            if entry.is_dir:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                data = chunk.read(entry.path)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            count += 1
    return count


def import_tar(chunk, fileobj, under=ROOT):
    """Add the members of the tar stream `fileobj` beneath directory `under`, all or none.

    Files replace files of the same name; directories that exist are kept as they are.
    Returns an ImportResult.
    """
    under = normalise(under)
    result = ImportResult()
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as tar, chunk.atomic():
            for member in tar:
                _add(chunk, tar, member, under, result)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as err:
        raise ChunkError(f"chunk {chunk.path}: cannot import the tar: it is not a tar "
                         f"archive, or is cut short or damaged ({err}); the chunk is "
                         "unchanged") from None
    return result


def _add(chunk, tar, member, under, result):
    path = normalise(join(under, normalise(member.name)) if under else member.name)
    mode = member.mode & 0o7777
    if member.isdir():
        if path != ROOT:  # `tar c .` names the root "."
            chunk.mkdir(path, mode, member.mtime, parents=True, exist_ok=True)
            result.dirs += 1
    elif member.isreg():
        chunk.check_size(path, member.size)
        chunk.write(path, tar.extractfile(member).read(), mode, member.mtime)
        result.files += 1
    elif member.islnk():
        source = join(under, normalise(member.linkname)) if under else member.linkname
        chunk.write(path, chunk.read(source), mode, member.mtime)
        result.files += 1
    else:
        result.skipped.append(f"{member.name} ({_SKIPPED.get(member.type, 'not a file')})")
