"""`geryon chunk`: make, fill, read and check chunk files from the shell.

Each command opens a Chunk, calls the library and prints plain text. Library errors are
ChunkErrors, which the root command prints as they are and turns into exit status 1. A torn
tail cut (or, read-only, passed over) when a chunk opens is said on stderr.
"""

import os
import stat as stat_module
import time

import click

from geryon.chunkfs import (DEFAULT_CAPACITY, Chunk, ChunkCorrupt, export_tar,
                            format_size, import_tar, normalise, parse_size)
from geryon.errors import GeryonError


@click.group()
def chunk():
    """Make, fill, read and check chunk files: disks of at most 64 MiB in one file.

    A chunk holds files and directories. Paths inside it are relative to its root,
    '/'-separated; '.' is the root. Copy the file and you have copied the disk.

    \b
    Example:
      geryon chunk create disk0
      geryon chunk put disk0 notes.txt
      geryon chunk ls -l disk0
      geryon chunk cat disk0 notes.txt
    """


def _open(file, readonly=False):
    disk = Chunk.open(file, readonly=readonly)
    if disk.repair:
        click.echo(f"geryon: {disk.repair}", err=True)
    return disk


def _stdout():
    return click.get_binary_stream("stdout")


@chunk.command()
@click.option("-s", "--size", default=f"{DEFAULT_CAPACITY // 2**20}M", show_default=True,
              help="Capacity: the most bytes each chunk file may hold, 4K to 4G.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def create(size, files):
    """Make empty chunk files.

    \b
    Example:
      geryon chunk create disk0 disk1
      geryon chunk create -s 1M small
    """
    capacity = parse_size(size)
    for file in files:
        Chunk.create(file, capacity).close()


@chunk.command(name="ls")
@click.option("-l", "long", is_flag=True, help="Show mode, size and modification time.")
@click.option("-R", "recursive", is_flag=True, help="List everything beneath PATH.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("path", default=".")
def list_(long, recursive, file, path):
    """List directory PATH of a chunk (the root if none); directories end in '/'.

    With -l each line is: mode, size in bytes, modification time (local), name.

    \b
    Example:
      geryon chunk ls disk0
      geryon chunk ls -lR disk0 mail
    """
    with _open(file, readonly=True) as disk:
        entry = disk.stat(path)
        top = entry.path
        if not entry.is_dir:
            entries, top = [entry], entry.path.rpartition("/")[0]
        elif recursive:
            entries = disk.walk(top)
        else:
            entries = disk.listdir(top)
        for entry in entries:
            name = entry.path[len(top) + 1:] if top else entry.path
            click.echo(format_entry(entry, name, long))


def format_entry(entry, name, long=False):
    """Return the line `ls` prints for `entry`, shown as `name`."""
    name += "/" if entry.is_dir else ""
    if not long:
        return name
    kind = stat_module.S_IFDIR if entry.is_dir else stat_module.S_IFREG
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.mtime))
    return f"{stat_module.filemode(kind | entry.mode)} {entry.size:>10} {when} {name}"


@chunk.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("local", type=click.Path(exists=True, allow_dash=True))
@click.argument("path", required=False)
def put(file, local, path):
    """Copy the local file or directory LOCAL into a chunk as PATH.

    PATH defaults to LOCAL's last name. LOCAL '-' reads standard input (PATH is then
    needed). A directory is copied with all it holds, all or nothing. Modes and
    modification times are kept; missing directories in PATH are made.

    \b
    Example:
      geryon chunk put disk0 notes.txt
      geryon chunk put disk0 ~/mail mbox
      date | geryon chunk put disk0 - today
    """
    if path is None:
        if local == "-":
            raise click.UsageError("put from standard input needs PATH, the name to give it")
        path = os.path.basename(os.path.normpath(local))
    with _open(file) as disk:
        if local == "-":
            disk.write(path, click.get_binary_stream("stdin").read())
        elif os.path.isdir(local):
            with disk.atomic():
                _put_tree(disk, local, normalise(path))
        else:
            _put_file(disk, local, path)


def _put_file(disk, local, path):
    try:
        info = os.stat(local)
        with open(local, "rb") as f:
            disk.check_size(path, info.st_size)
            data = f.read()
    except OSError as err:
        raise GeryonError(f"cannot read {local}: {err.strerror}") from None
    disk.write(path, data, stat_module.S_IMODE(info.st_mode), info.st_mtime)


def _put_tree(disk, local, path):
    info = os.stat(local)
    disk.mkdir(path, stat_module.S_IMODE(info.st_mode), info.st_mtime, parents=True,
               exist_ok=True)
    for item in sorted(os.scandir(local), key=lambda item: item.name):
        target = f"{path}/{item.name}" if path else item.name
        if item.is_dir(follow_symlinks=False):
            _put_tree(disk, item.path, target)
        elif item.is_file(follow_symlinks=False):
            _put_file(disk, item.path, target)
        else:
            click.echo(f"geryon: skipped {item.path}: not a regular file or directory",
                       err=True)


@chunk.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("path")
@click.argument("local", required=False, type=click.Path(allow_dash=True))
def get(file, path, local):
    """Copy PATH out of a chunk to the local file or directory LOCAL.

    LOCAL defaults to PATH's last name in the current directory; '-' writes a file to
    standard output. A directory is copied with all it holds. Modes and modification
    times are kept; a local file of the same name is replaced.

    \b
    Example:
      geryon chunk get disk0 notes.txt
      geryon chunk get disk0 mail ./mail-copy
    """
    with _open(file, readonly=True) as disk:
        entry = disk.stat(path)
        if local is None:
            if not entry.path:
                raise click.UsageError("get of the root needs LOCAL, where to put it")
            local = entry.name
        if local == "-":
            _stdout().write(disk.read(entry.path))
            return
        entries = [entry, *(disk.walk(entry.path) if entry.is_dir else ())]
        for inner in entries:
            _get_entry(disk, inner, _local_path(local, entry, inner))
        # Directories get their modes and times last: making what they hold changes their
        # mtime, and a read-only mode would stop it being made.
        for inner in reversed(entries):
            if inner.is_dir:
                _get_entry(disk, inner, _local_path(local, entry, inner), finish=True)


def _local_path(local, top, inner):
    relative = inner.path[len(top.path):].lstrip("/")
    return os.path.join(local, relative) if relative else local


def _get_entry(disk, entry, local, finish=False):
    try:
        if entry.is_dir and not finish:
            os.makedirs(local, exist_ok=True)
            return
        if not entry.is_dir:
            with open(local, "wb") as f:
                f.write(disk.read(entry.path))
        os.chmod(local, entry.mode)
        os.utime(local, ns=(entry.mtime_ns, entry.mtime_ns))
    except OSError as err:
        raise GeryonError(f"cannot write {local}: {err.strerror}") from None


@chunk.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("paths", nargs=-1, required=True)
def cat(file, paths):
    """Write the files PATHS of a chunk to standard output, one after another.

    \b
    Example:
      geryon chunk cat disk0 notes.txt | wc -l
    """
    with _open(file, readonly=True) as disk:
        for path in paths:
            _stdout().write(disk.read(path))


@chunk.command()
@click.option("-r", "recursive", is_flag=True, help="Remove directories and all they hold.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("paths", nargs=-1, required=True)
def rm(recursive, file, paths):
    """Remove files (and with -r, directories) from a chunk; all of PATHS or none.

    An empty directory is removed without -r. The space they held is reclaimed by
    `geryon chunk compact`.

    \b
    Example:
      geryon chunk rm disk0 notes.txt
      geryon chunk rm -r disk0 mail
    """
    with _open(file) as disk, disk.atomic():
        for path in paths:
            disk.remove(path, recursive=recursive)


@chunk.command(name="stat")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("paths", nargs=-1)
def stat_(file, paths):
    """Print a chunk's sizes and counts, or the metadata of PATHS in it.

    One 'name value' pair a line, sizes in bytes, mtime in seconds since 1970; a blank
    line between paths.

    \b
    Example:
      geryon chunk stat disk0
      geryon chunk stat disk0 notes.txt | awk '$1 == "size" {print $2}'
    """
    with _open(file, readonly=True) as disk:
        if not paths:
            files = sum(not entry.is_dir for entry in disk.walk())
            pairs = [("capacity", disk.capacity), ("used", disk.used), ("free", disk.free),
                     ("live", disk.live), ("files", files),
                     ("dirs", len(disk.walk()) - files), ("log", disk.log_id)]
            click.echo("".join(f"{name} {value}\n" for name, value in pairs), nl=False)
            return
        blocks = []
        for path in paths:
            entry = disk.stat(path)
            pairs = [("path", entry.path or "."), ("kind", entry.kind),
                     ("mode", f"{entry.mode:04o}"), ("size", entry.size),
                     ("mtime", _seconds(entry.mtime_ns))]
            blocks.append("".join(f"{name} {value}\n" for name, value in pairs))
        click.echo("\n".join(blocks), nl=False)


def _seconds(ns):
    sign = "-" if ns < 0 else ""
    whole, fraction = divmod(abs(ns), 10**9)
    return f"{sign}{whole}.{fraction:09d}"


@chunk.command()
@click.option("--repair", is_flag=True,
              help="Cut the chunk at its first damaged record, losing what follows.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def fsck(repair, files):
    """Check chunks: every record, every file's data; exit 1 if any has a problem.

    Without --repair nothing is changed. With it, a torn tail (what a crash during a
    write leaves) is cut, and so is damage inside the chunk, losing the records after it:
    copy the chunk from a replica first if there is one.

    \b
    Example:
      geryon chunk fsck disk0 disk1
      geryon chunk fsck --repair disk0
    """
    sound = True
    for file in files:
        try:
            disk = Chunk.open(file, readonly=not repair, salvage=repair)
        except ChunkCorrupt as err:
            click.echo(str(err))
            sound = False
            continue
        with disk:
            if repair and disk.repair:
                click.echo(disk.repair)
            report = disk.fsck()
        click.echo(str(report))
        sound = sound and report.ok
    if not sound:
        raise SystemExit(1)


@chunk.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def compact(files):
    """Rewrite chunks without the space removed and replaced files hold.

    The new chunk replaces the old one only when it is complete, so a crash leaves one
    or the other.

    \b
    Example:
      geryon chunk compact disk0
    """
    for file in files:
        with _open(file) as disk:
            before = disk.used
            disk.compact()
            click.echo(f"chunk {file}: {format_size(before)} -> {format_size(disk.used)}")


@chunk.command(name="export")
@click.option("-o", "output", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the tar to this file instead of standard output.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("path", default=".")
def export_(output, file, path):
    """Write the tree beneath PATH (the root if none) as a tar stream.

    \b
    Example:
      geryon chunk export disk0 | tar tvf -
      geryon chunk export -o mail.tar disk0 mail
    """
    with _open(file, readonly=True) as disk:
        if output in (None, "-"):
            if _stdout().isatty():
                raise GeryonError("refusing to write a tar to a terminal; "
                                  "give -o FILE or send it down a pipe")
            export_tar(disk, _stdout(), path)
            return
        try:
            with open(output, "wb") as f:
                export_tar(disk, f, path)
        except OSError as err:
            raise GeryonError(f"cannot write {output}: {err.strerror}") from None


@chunk.command(name="import")
@click.option("-d", "--dir", "under", default=".", show_default=True,
              help="The directory of the chunk to put the tar's members beneath.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("tarfile", type=click.File("rb"), default="-")
def import_(under, file, tarfile):
    """Add the members of a tar (standard input if no TARFILE) to a chunk, all or none.

    Plain, gzip, bzip2 and xz tars are read. Hard links become copies; symbolic links
    and devices are skipped and named on standard error.

    \b
    Example:
      tar cf - mail | geryon chunk import disk0
      geryon chunk import -d old disk0 backup.tar.gz
    """
    with _open(file) as disk:
        result = import_tar(disk, tarfile, under)
    for name in result.skipped:
        click.echo(f"geryon: skipped {name}", err=True)

