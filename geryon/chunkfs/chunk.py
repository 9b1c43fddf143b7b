"""A chunk disk: a small file system kept in one append-only file.

Theory of operation. Opening reads the whole file (at most its capacity, 64 MiB unless made
otherwise), scans its records (record.py) and replays them into a Tree (tree.py): that is
the index, and it is never stored. A change is checked against the Tree, encoded as records
at the end of the file, written in full and fsynced, and only then applied to the Tree, so
the Tree never shows what the file does not hold; if the write fails the file is truncated
back. A crash in the middle of an append leaves a torn tail, which the next open cuts off
and reports in `Chunk.repair`. A writable open holds an exclusive flock(2), so two writers
never interleave records; readers take no lock and see the log as it was when they opened.

A Chunk is not thread-safe: use it from one thread at a time.
"""

import errno
import logging
import os
import time
from contextlib import contextmanager

import fcntl
import xxhash
import zstandard

from geryon.chunkfs import fsck, tail
from geryon.chunkfs.errors import ChunkCorrupt, ChunkError, ChunkFull, ChunkPathError, RecordError
from geryon.chunkfs.paths import ROOT, normalise
from geryon.chunkfs.record import (DEFAULT_CAPACITY, HEAD_SIZE, HEADER_SIZE, MAX_CAPACITY,
                                   MAX_MODE, MIN_CAPACITY, ChunkHeader, Kind, Record,
                                   check_data, decode, decode_header, encode, encode_header,
                                   pack, scan, unpack)
from geryon.chunkfs.sizes import format_size
from geryon.chunkfs.tree import Tree, replay

log = logging.getLogger("geryon.chunkfs")

DEFAULT_LEVEL = 3  # zstd's own default: most of the ratio of higher levels, at ~300 MB/s
_FLUSH = 4 * 2**20  # compaction writes in pieces of about this size


class Chunk:
    """An open chunk file. Make one with Chunk.create or Chunk.open; use it as a context manager.

    Paths are '/'-separated and relative to the disk's root ('' or '.'); see paths.normalise.
    Every method raises ChunkError (or a subclass) for anything a person could get wrong.
    """

    def __init__(self, path, fd, *, readonly, sync, level):
        self.path = path
        self.readonly = readonly
        self.repair = None  # what open() had to cut, as a sentence for people
        self._fd = fd
        self._sync = sync
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._decompressor = zstandard.ZstdDecompressor()
        self._header = self._tree = None
        self._end = HEADER_SIZE  # where the next record goes
        self._group = None  # inside atomic(): the Tree and end offset to go back to

    # Making and opening.

    @classmethod
    def create(cls, path, capacity=DEFAULT_CAPACITY, *, sync=True, level=DEFAULT_LEVEL):
        """Make a new, empty chunk file at `path` and return it open for writing."""
        path = os.fspath(path)
        if not isinstance(capacity, int) or not MIN_CAPACITY <= capacity <= MAX_CAPACITY:
            raise ChunkError(f"cannot create chunk {path}: a capacity of {capacity!r} bytes "
                             f"is outside {format_size(MIN_CAPACITY)} to "
                             f"{format_size(MAX_CAPACITY)}", errno.EINVAL)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o644)
        except FileExistsError:
            raise ChunkError(f"cannot create chunk {path}: the file already exists; remove "
                             "it or choose another name", errno.EEXIST) from None
        except OSError as err:
            raise ChunkError(f"cannot create chunk {path}: {err.strerror}", err.errno) from None
        chunk = cls(path, fd, readonly=False, sync=sync, level=level)
        try:
            _lock(fd, path)
            chunk._header = ChunkHeader(capacity, os.urandom(16))
            _write_all(fd, encode_header(chunk._header), 0)
            os.fsync(fd)
            _sync_dir(path)
        except OSError as err:
            os.close(fd)
            os.unlink(path)
            raise ChunkError(f"cannot create chunk {path}: {err.strerror}", err.errno) from None
        chunk._tree = Tree()
        return chunk

    @classmethod
    def open(cls, path, *, readonly=False, sync=True, salvage=False, whole=False,
             level=DEFAULT_LEVEL):
        """Open the chunk at `path`, rebuilding its index; cut a torn tail (see .repair).

        readonly: change nothing, not even a torn tail (read as if it were cut); take no lock.
        sync=False: do not fsync each change, only on sync() and close() (faster, and a crash
        may then lose recent changes or leave damage that only `salvage` opens).
        salvage: cut the chunk at its first damaged record even when sound records follow,
        losing them. Without it such a chunk is refused with ChunkCorrupt.
        whole: the file was sent whole (a chunk image), so refuse any damage, a torn tail
        too, and check that every file record, live or dead, decompresses to exactly its
        stated size (a megabyte at a time, so a record that lies costs no memory).
        """
        path = os.fspath(path)
        flags = (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise ChunkError(f"chunk {path}: no such file (geryon chunk create makes one)",
                             errno.ENOENT) from None
        except OSError as err:
            raise ChunkError(f"chunk {path}: cannot open it: {err.strerror}", err.errno) \
                from None
        chunk = cls(path, fd, readonly=readonly, sync=sync, level=level)
        try:
            if not readonly:
                _lock(fd, path)
            chunk._load(salvage, whole)
        except BaseException:
            os.close(fd)
            raise
        return chunk

    def _load(self, salvage, whole=False):
        buf = self._read_file()
        try:
            self._header = decode_header(buf)
        except ChunkCorrupt as err:
            raise ChunkCorrupt(f"chunk {self.path}: {err}") from None
        if len(buf) > self.capacity:
            raise ChunkCorrupt(f"chunk {self.path}: the file is {len(buf)} bytes long, more "
                               f"than the capacity of {self.capacity} its header gives; "
                               "something other than geryon wrote to it")
        found = scan(buf, capacity=self.capacity)
        self._tree, replay_damage = replay(found.records)
        damages = [d for d in (replay_damage, found.damage) if d is not None]
        if whole:
            self._check_whole(buf, found.records, damages)
        inside = [d for d in damages if d.inside]
        if inside and not salvage:
            damage = inside[0]
            follows = (f", and a sound record follows at offset {damage.next_sound}"
                       if damage.next_sound > damage.offset else "")
            raise ChunkCorrupt(
                f"chunk {self.path}: {damage}{follows}; the chunk is damaged inside, not torn "
                "at its end. "
                f"`geryon chunk fsck --repair {self.path}` cuts it at offset "
                f"{min(d.offset for d in damages)}, losing what follows; or copy the chunk "
                "from a replica")
        self._end = len(buf)
        if damages:
            first = min(damages, key=lambda d: d.offset)
            self._end = first.offset
            kept = f"{format_size(first.offset)} kept"
            if self.readonly:
                self.repair = (f"chunk {self.path}: {first}; the chunk is open read-only, so "
                               f"it is read as if cut there ({kept})")
            else:
                self._truncate(first.offset, "cut its torn tail")
                self.repair = f"chunk {self.path}: {first}; the chunk was cut there ({kept})"
            log.info("%s", self.repair)  # callers report .repair as they see fit

    def _check_whole(self, buf, records, damages):
        if damages:
            raise ChunkCorrupt(f"chunk {self.path}: {min(damages, key=lambda d: d.offset)}; "
                               "an image must be whole, with nothing cut off or damaged: "
                               "send it again, or check its source with `geryon chunk fsck`")
        view = memoryview(buf)
        try:
            for record in records:
                if record.kind is Kind.FILE:
                    check_data(record, view[record.body_offset:record.end],
                               self._decompressor)
        except RecordError as err:
            raise ChunkCorrupt(f"chunk {self.path}: {err}; no geryon writes such a record: "
                               "check the image's source with `geryon chunk fsck`") from None

    def close(self):
        """Flush what sync=False held back and close the file; closing twice is harmless."""
        if self._fd is None:
            return
        try:
            if not self.readonly and not self._sync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<Chunk {self.path} {self.used}/{self.capacity} bytes>"

    # Sizes.

    @property
    def capacity(self):
        """The most bytes the chunk file may ever hold, its header included."""
        return self._header.capacity

    @property
    def used(self):
        """Bytes the chunk file holds now, dead records included."""
        return self._end

    @property
    def free(self):
        """Bytes that can still be appended (compaction may free more: see .live)."""
        reserve = HEAD_SIZE if self._group is not None else 0  # room for the COMMIT
        return max(0, self.capacity - self._end - reserve)

    @property
    def live(self):
        """Bytes the chunk would use after compaction."""
        return HEADER_SIZE + self._tree.live_bytes()

    def counts(self):
        """Return (files, directories) the chunk holds, its root not counted."""
        return self._tree.counts()

    @property
    def log_id(self):
        """The log's identity as hex; it changes when compaction rewrites the log."""
        return self._header.log_id.hex()

    # Reading.

    def stat(self, path):
        """Return the IndexEntry at `path` (path, kind 'file' or 'dir', mode, mtime, size)."""
        with self._naming():
            return self._tree.stat(normalise(path))

    def exists(self, path):
        """Say whether anything is at `path`."""
        with self._naming():
            return self._tree.get(normalise(path)) is not None

    def listdir(self, path=ROOT):
        """Return the entries of directory `path`, sorted by name."""
        with self._naming():
            return self._tree.listdir(normalise(path))

    def walk(self, top=ROOT):
        """Return every entry beneath directory `top`, each directory before what it holds."""
        with self._naming():
            return list(self._tree.walk(normalise(top)))

    def place(self, path):
        """Where the record holding the file at `path` lies: a Place (offset, length)."""
        with self._naming():
            return self._tree.place(normalise(path))

    def read(self, path):
        """Return the data of the file at `path`, checked against its checksum."""
        with self._naming():
            path = normalise(path)
            place = self._tree.place(path)
        try:
            record, body = self._read_record(place.offset, place.length)
            return unpack(record, body, self._decompressor)
        except RecordError as err:
            # Opening checked the record's sums, not its data; or the file changed since.
            raise ChunkCorrupt(f"chunk {self.path}: cannot read {path!r}: its {err}; the "
                               "chunk is damaged there: run `geryon chunk fsck "
                               f"{self.path}` to see what else is") from None

    def _read_record(self, offset, length):
        buf = self._pread(length, offset)
        record = decode(buf, offset, base=offset, capacity=self.capacity)
        return record, memoryview(buf)[record.body_offset - offset:]

    # Changing.

    def write(self, path, data, mode=0o644, mtime=None, *, packed=None):
        """Make `path` a file holding `data`, replacing any file there; return its IndexEntry.

        Missing parent directories are made (mode 0755). mtime is in seconds since the epoch
        (now if None). A file larger than the chunk's capacity is refused with ChunkFull, as
        is one that does not fit in the free space; either way nothing is written.
        packed: (size, flags, body) as record.pack() made them elsewhere, in place of data
        (so that a loader can compress in other processes).
        """
        if packed is not None:
            size, flags, body = packed
        else:
            data = bytes(data)
            size = len(data)
        with self._naming():
            path = self._changeable(normalise(path))
            parents = self._tree.missing_parents(path)
            if not parents:
                self._tree.check(Record(0, Kind.FILE, path))
        self.check_size(path, size)
        if packed is None:
            flags, body = pack(data, self._compressor)
        now = time.time_ns()
        records = [(Kind.DIR, directory, {"mode": 0o755, "mtime_ns": now})
                   for directory in parents]
        records.append((Kind.FILE, path, {"mode": _mode(self, mode), "size": size,
                                          "mtime_ns": _mtime_ns(self, mtime, now),
                                          "flags": flags, "body": body}))
        self._append(records, path)
        return self._tree.stat(path)

    def check_size(self, path, size):
        """Raise ChunkFull if a file of `size` bytes is larger than this chunk could ever hold."""
        if size > self.capacity - HEADER_SIZE:
            raise ChunkFull(f"chunk {self.path}: no room to write {path!r}: it is {size} "
                            f"bytes long, more than a chunk of {self.capacity} bytes can hold; "
                            "split it into smaller files", size, self.free)

    def mkdir(self, path, mode=0o755, mtime=None, *, parents=False, exist_ok=False):
        """Make directory `path` and return its IndexEntry; `parents` makes missing ones too."""
        with self._naming():
            path = normalise(path)
            entry = self._tree.get(path)
            if entry is not None and entry.is_dir and exist_ok:
                return entry
            self._changeable(path)
            missing = self._tree.missing_parents(path) if parents else []
            if not missing:
                self._tree.check(Record(0, Kind.DIR, path))
        now = time.time_ns()
        records = [(Kind.DIR, directory, {"mode": 0o755, "mtime_ns": now})
                   for directory in missing]
        records.append((Kind.DIR, path, {"mode": _mode(self, mode),
                                         "mtime_ns": _mtime_ns(self, mtime, now)}))
        self._append(records, path)
        return self._tree.stat(path)

    def remove(self, path, recursive=False):
        """Remove the file or directory at `path`; a directory must be empty unless `recursive`."""
        with self._naming():
            path = self._changeable(normalise(path))
            entry = self._tree.stat(path)
            if entry.is_dir and not recursive and self._tree.listdir(path):
                raise ChunkPathError(f"cannot remove {path!r}: it is a directory that is not "
                                     "empty; remove what it holds first, or remove it "
                                     "recursively", errno.ENOTEMPTY)
        self._append([(Kind.REMOVE, path, {})], path)

    def rename(self, old, new):
        """Move `old` (and all it holds) to `new`, replacing a file or empty directory there."""
        with self._naming():
            old = self._changeable(normalise(old))
            new = self._changeable(normalise(new))
            self._tree.check(Record(0, Kind.RENAME, old, target=new))
        if old != new:
            self._append([(Kind.RENAME, old, {"body": new.encode("utf-8")})], old)

    def set_attributes(self, path, mode=None, mtime=None):
        """Set the mode and/or mtime (seconds) of `path`; return its new IndexEntry."""
        with self._naming():
            path = self._changeable(normalise(path))
            entry = self._tree.stat(path)
        mode = entry.mode if mode is None else _mode(self, mode)
        mtime_ns = entry.mtime_ns if mtime is None else _mtime_ns(self, mtime, 0)
        self._append([(Kind.ATTR, path, {"mode": mode, "mtime_ns": mtime_ns})], path)
        return self._tree.stat(path)

    @contextmanager
    def atomic(self):
        """Make the changes inside count together: all, or none after an error or a crash.

        They are written as a group between BEGIN and COMMIT records and fsynced once, at
        the COMMIT. An exception inside truncates the chunk back to where the group began;
        a crash inside leaves a group with no COMMIT, which the next open cuts. A nested
        atomic() joins the group around it.
        """
        self._writable()
        if self._group is not None:
            yield self
            return
        self._group = (self._tree.copy(), self._end)
        try:
            yield self
            if self._end != self._group[1]:
                self._append([(Kind.COMMIT, ROOT, {})], "the end of a group", commit=True)
        except BaseException:
            tree, end = self._group
            if self._end != end:
                self._truncate(end, "undo a group of changes")
            self._tree, self._end = tree, end
            raise
        finally:
            self._group = None

    def sync(self):
        """fsync the chunk file (what sync=False holds back)."""
        if not self.readonly:
            os.fsync(self._fd)

    def _append(self, records, what, commit=False):
        # The records are encoded where they will lie, written in full, fsynced, and only
        # then applied to the tree; a failed write is truncated away. Several records for
        # one change (a file and its new parents) are a group, so a crash cannot leave half.
        if self._group is None and len(records) > 1:
            records = [(Kind.BEGIN, ROOT, {}), *records, (Kind.COMMIT, ROOT, {})]
        elif self._group is not None and self._end == self._group[1]:
            records = [(Kind.BEGIN, ROOT, {}), *records]
        start = offset = self._end
        pieces = []
        for kind, path, fields in records:
            pieces.append(encode(offset, kind, path, **fields))
            offset += len(pieces[-1])
        blob = b"".join(pieces)
        if len(blob) > self.free + (HEAD_SIZE if commit else 0):
            raise ChunkFull(f"chunk {self.path}: no room to write {what!r}: it needs "
                            f"{len(blob)} bytes and {self.free} bytes are free; compact the "
                            "chunk to reclaim what removed and replaced files hold, or write "
                            "to another disk", len(blob), self.free)
        try:
            _write_all(self._fd, blob, start)
            if self._sync and (self._group is None or commit):
                os.fsync(self._fd)
        except OSError as err:
            self._truncate(start, f"undo a failed write of {what!r}")
            raise ChunkError(f"chunk {self.path}: cannot write {what!r}: {err.strerror}; "
                             "nothing was written", err.errno) from None
        # The records are known: apply them as they were encoded, not decoded back.
        for piece_offset, piece, (kind, path, fields) in zip(_offsets(start, pieces), pieces,
                                                             records):
            body = fields.get("body", b"")
            self._tree.apply(Record(
                piece_offset, kind, path, fields.get("mode", 0), fields.get("mtime_ns", 0),
                fields.get("size", 0), fields.get("flags", 0),
                body.decode("utf-8") if kind == Kind.RENAME else "", len(body), len(piece)))
        self._end = offset

    def append_log(self, data):
        """Append records copied from this chunk's master (a replica following it): `data`
        is the master's log from this chunk's end on. Each record is checked (tail.take)
        and only whole records and committed groups are written, fsynced, then applied;
        return the bytes taken (the rest, cut off in transit, comes with the next copy).
        ChunkCorrupt if the data holds a bad record, ChunkFull if it passes the capacity:
        either way nothing is written."""
        self._writable()
        if self._group is not None:
            raise ChunkError(f"chunk {self.path}: cannot copy a log inside atomic()")
        try:
            taken = tail.take(data, self._end, self._tree, self.capacity)
        except ChunkCorrupt as err:
            raise ChunkCorrupt(f"chunk {self.path}: {err}") from None
        if self._end + taken.length > self.capacity:
            raise ChunkFull(f"chunk {self.path}: the master's log is longer than this "
                            f"chunk's capacity of {self.capacity} bytes; copy it to a larger "
                            "chunk", taken.length, self.free)
        if not taken.length:
            return 0
        start = self._end
        try:
            _write_all(self._fd, memoryview(data)[:taken.length], start)
            if self._sync:
                os.fsync(self._fd)
        except OSError as err:
            self._truncate(start, "undo a failed copy of the master's log")
            raise ChunkError(f"chunk {self.path}: cannot append the master's log: "
                             f"{err.strerror}; nothing was written", err.errno) from None
        self._tree, self._end = taken.tree, start + taken.length
        return taken.length

    def log_sum(self, end=None):
        """The xxh3-64 (hex) of the chunk file's first `end` bytes (all it holds if None),
        header and log id included: two chunks with the same sum to the same end hold the
        same log to there."""
        end = self._end if end is None else end
        if not 0 <= end <= self._end:
            raise ChunkError(f"chunk {self.path}: cannot sum its first {end} bytes: it holds "
                             f"{self._end}", errno.EINVAL)
        digest = xxhash.xxh3_64()
        for offset in range(0, end, _FLUSH):
            digest.update(self._pread(min(_FLUSH, end - offset), offset))
        return digest.hexdigest()

    # Upkeep.

    def move(self, target):
        """Move this open chunk's file to `target` (atomically replacing any file there)
        and go on using it under that name: how a checked image is swapped in."""
        self._writable()
        os.replace(self.path, target)
        self.path = os.fspath(target)
        _sync_dir(self.path)

    def compact(self):
        """Rewrite the chunk with only its live records; return the bytes freed.

        The new log is written to a hidden file beside the chunk, fsynced, and renamed over
        the chunk (then the directory is fsynced), so a crash leaves either the old chunk or
        the new one. The log gets a new log_id.
        """
        self._writable()
        if self._group is not None:
            raise ChunkError(f"chunk {self.path}: cannot compact inside atomic()")
        directory, name = os.path.split(os.path.abspath(self.path))
        temp = os.path.join(directory, f".{name}.compacting")
        header = ChunkHeader(self.capacity, os.urandom(16))
        tree, end = Tree(), HEADER_SIZE
        try:
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                         os.fstat(self._fd).st_mode & 0o777)
        except OSError as err:
            raise ChunkError(f"chunk {self.path}: cannot compact: {temp}: {err.strerror}",
                             err.errno) from None
        try:
            _lock(fd, temp)
            pending, written = [encode_header(header)], 0
            for entry in self._tree.walk():
                fields = {"mode": entry.mode, "mtime_ns": entry.mtime_ns}
                if entry.is_dir:
                    piece = encode(end, Kind.DIR, entry.path, **fields)
                else:
                    place = self._tree.place(entry.path)
                    record, body = self._read_record(place.offset, place.length)
                    piece = encode(end, Kind.FILE, entry.path, size=record.size,
                                   flags=record.flags, body=body, **fields)
                tree.apply(decode(piece, end, base=end))
                end += len(piece)
                pending.append(piece)
                if sum(map(len, pending)) >= _FLUSH:
                    written += _write_all(fd, b"".join(pending), written)
                    pending = []
            _write_all(fd, b"".join(pending), written)
            os.fsync(fd)
            os.replace(temp, self.path)
        except BaseException as err:
            os.close(fd)
            if os.path.exists(temp):
                os.unlink(temp)
            if isinstance(err, RecordError):
                raise ChunkCorrupt(f"chunk {self.path}: cannot compact: {err}; the chunk is "
                                   "unchanged: run `geryon chunk fsck` on it") from None
            if isinstance(err, OSError):
                raise ChunkError(f"chunk {self.path}: cannot compact: {err.strerror}; the "
                                 "chunk is unchanged", err.errno) from None
            raise
        os.close(self._fd)
        freed = self._end - end
        self._fd, self._header, self._tree, self._end = fd, header, tree, end
        try:
            _sync_dir(self.path)
        except OSError as err:
            raise ChunkError(f"chunk {self.path}: compacted, but its directory could not be "
                             f"fsynced ({err.strerror}): a crash now may bring back the old "
                             "chunk", err.errno) from None
        return freed

    def fsck(self):
        """Check every record and every file's data as the file is now; return an FsckReport."""
        report = fsck.check(self.path, self._read_file(), self._tree, self._decompressor)
        report.repair = self.repair
        return report

    # Helpers.

    @contextmanager
    def _naming(self):
        # The tree and path rules do not know which chunk they serve; say it for them.
        try:
            yield
        except ChunkPathError as err:
            raise ChunkPathError(f"chunk {self.path}: {err}", err.errno) from None

    def _writable(self):
        if self._fd is None:
            raise ChunkError(f"chunk {self.path}: is closed")
        if self.readonly:
            raise ChunkError(f"chunk {self.path}: is open read-only; open it for writing "
                             "to change it", errno.EROFS)

    def _changeable(self, path):
        self._writable()
        if path == ROOT:
            raise ChunkPathError("the root directory cannot be written, removed or renamed",
                                 errno.EPERM)
        return path

    def _read_file(self):
        return self._pread(os.fstat(self._fd).st_size, 0)

    def _pread(self, length, offset):
        if self._fd is None:
            raise ChunkError(f"chunk {self.path}: is closed")
        pieces = []
        try:
            while length > 0:
                piece = os.pread(self._fd, length, offset)
                if not piece:
                    break
                pieces.append(piece)
                length -= len(piece)
                offset += len(piece)
        except OSError as err:
            raise ChunkError(f"chunk {self.path}: cannot read it: {err.strerror}",
                             err.errno) from None
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _truncate(self, size, why):
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError as err:
            raise ChunkError(f"chunk {self.path}: cannot truncate it to {size} bytes to {why}: "
                             f"{err.strerror}", err.errno) from None


def _offsets(start, pieces):
    for piece in pieces:
        yield start
        start += len(piece)


def _mode(chunk, mode):
    if not isinstance(mode, int) or not 0 <= mode <= MAX_MODE:
        raise ChunkError(f"chunk {chunk.path}: {mode!r} is not a permission mode "
                         "(0 to 0o7777)", errno.EINVAL)
    return mode


def _mtime_ns(chunk, mtime, now):
    if mtime is None:
        return now
    try:
        mtime_ns = round(mtime * 1e9)
    except TypeError:
        mtime_ns = None
    if mtime_ns is None or not -2**63 <= mtime_ns < 2**63:
        raise ChunkError(f"chunk {chunk.path}: mtime {mtime!r} is not a time in seconds "
                         "since 1970 that fits in 64 bits of nanoseconds", errno.EINVAL)
    return mtime_ns


def _lock(fd, path):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ChunkError(f"chunk {path}: another process has it open for writing (a node "
                         "serving it?); stop that process, or open the chunk read-only",
                         errno.EBUSY) from None


def _write_all(fd, data, offset):
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done
    return len(data)


def _sync_dir(path):
    # The directory entry must be durable too, or a crash could lose a new or renamed file.
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
