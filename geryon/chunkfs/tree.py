"""The index of a chunk: the tree its records describe, rebuilt by replaying them in order.

Sans-I/O like record.py: a Tree knows each entry's metadata and where a file's record lies,
never the data. The rules of the tree (a file's parent is a directory, a rename does not
move a directory into itself, ...) live here once, in `check`, and serve both sides: a
Chunk checks a record before it writes it, and replay checks every record it reads, so a
log that breaks them is damage rather than a tree that cannot be.
"""

import errno
from dataclasses import dataclass

from geryon.chunkfs.errors import ChunkPathError
from geryon.chunkfs.paths import ROOT, is_inside, join, parent
from geryon.chunkfs.record import HEAD_SIZE, Damage, Kind

FILE, DIR = "file", "dir"


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """A file or directory in a chunk's index (not an ndb entry). `mode` holds permission
    bits only."""

    path: str
    kind: str  # "file" or "dir"
    mode: int
    mtime_ns: int
    size: int  # a file's length; 0 for a directory

    @property
    def name(self):
        return self.path.rpartition("/")[2]

    @property
    def mtime(self):
        """Seconds since the epoch, as os.stat's st_mtime."""
        return self.mtime_ns / 1e9

    @property
    def is_dir(self):
        return self.kind == DIR


ROOT_ENTRY = IndexEntry(ROOT, DIR, 0o755, 0, 0)


@dataclass(frozen=True, slots=True)
class Place:
    """Where the record holding a file's data lies in the chunk file."""

    offset: int
    length: int
    body_len: int
    flags: int = 0  # how the body is packed (record.ZSTD or not)


class Tree:
    """The files and directories of a chunk, as its records so far describe them."""

    def __init__(self):
        self._entries = {ROOT: ROOT_ENTRY}
        self._children = {ROOT: set()}  # directory -> names in it
        self._places = {}  # file -> Place

    # Questions.

    def get(self, path):
        """Return the IndexEntry at `path`, or None."""
        return self._entries.get(path)

    def stat(self, path):
        """Return the IndexEntry at `path`; raise ChunkPathError(ENOENT) if there is none."""
        entry = self._entries.get(path)
        if entry is None:
            raise _missing(path)
        return entry

    def place(self, path):
        """Return the Place of the file at `path`."""
        if self.stat(path).is_dir:
            raise ChunkPathError(f"{_shown(path)} is a directory, not a file", errno.EISDIR)
        return self._places[path]

    def listdir(self, path):
        """Return the entries in directory `path`, sorted by name."""
        if not self.stat(path).is_dir:
            raise ChunkPathError(f"{_shown(path)} is a file, not a directory", errno.ENOTDIR)
        return [self._entries[join(path, name)] for name in sorted(self._children[path])]

    def walk(self, top=ROOT):
        """Yield every entry beneath directory `top`, each directory before what it holds."""
        for entry in self.listdir(top):
            yield entry
            if entry.is_dir:
                yield from self.walk(entry.path)

    def counts(self):
        """Return (files, directories), the root not counted."""
        return len(self._places), len(self._entries) - len(self._places) - 1

    def live_bytes(self):
        """Return the bytes of records a compacted log of this tree needs (header excluded)."""
        return sum(HEAD_SIZE + len(path.encode("utf-8")) + self._body_len(path)
                   for path in self._entries if path != ROOT)

    def _body_len(self, path):
        place = self._places.get(path)
        return place.body_len if place else 0

    def missing_parents(self, path):
        """Return the directories to make, outermost first, before `path` can be made."""
        missing = []
        directory = parent(path)
        while directory not in self._entries:
            missing.append(directory)
            directory = parent(directory)
        if not self._entries[directory].is_dir:
            raise ChunkPathError(f"cannot make {path!r}: {directory!r} is a file, "
                                 "not a directory", errno.ENOTDIR)
        return missing[::-1]

    def check(self, record):
        """Raise ChunkPathError if `record` cannot apply to the tree as it stands."""
        _CHECKS[record.kind](self, record)

    def copy(self):
        """Return a tree that changes independently of this one."""
        other = Tree()
        other._entries = dict(self._entries)
        other._children = {path: set(names) for path, names in self._children.items()}
        other._places = dict(self._places)
        return other

    # Changes.

    def apply(self, record):
        """Change the tree as `record` says; check() it first."""
        _APPLY[record.kind](self, record)

    def _add(self, entry, place=None):
        self._remove(entry.path)
        self._entries[entry.path] = entry
        self._children[parent(entry.path)].add(entry.name)
        if entry.is_dir:
            self._children[entry.path] = set()
        else:
            self._places[entry.path] = place

    def _remove(self, path):
        entry = self._entries.pop(path, None)
        if entry is None:
            return
        siblings = self._children.get(parent(path))  # gone if the parent is going too
        if siblings is not None:
            siblings.discard(entry.name)
        self._places.pop(path, None)
        for name in self._children.pop(path, ()):
            self._remove(join(path, name))

    def _move(self, old, new):
        moving = [self._entries[old], *(self.walk(old) if self._entries[old].is_dir else ())]
        places = {entry.path: self._places.get(entry.path) for entry in moving}
        self._remove(new)
        self._remove(old)
        for entry in moving:  # each directory comes before what it holds
            path = new + entry.path[len(old):]
            self._add(IndexEntry(path, entry.kind, entry.mode, entry.mtime_ns, entry.size),
                      places[entry.path])


def _shown(path):
    return repr(path or ".")  # the root's canonical name is '', which reads as nothing


def _missing(path):
    return ChunkPathError(f"{path!r} does not exist", errno.ENOENT)


def _check_parent(tree, verb, path):
    directory = parent(path)
    entry = tree.get(directory)
    if entry is None:
        raise ChunkPathError(f"cannot {verb} {path!r}: its directory {directory!r} "
                             "does not exist", errno.ENOENT)
    if not entry.is_dir:
        raise ChunkPathError(f"cannot {verb} {path!r}: {directory!r} is a file, "
                             "not a directory", errno.ENOTDIR)


def _check_file(tree, record):
    _check_parent(tree, "write", record.path)
    entry = tree.get(record.path)
    if entry and entry.is_dir:
        raise ChunkPathError(f"cannot write {record.path!r}: it is a directory", errno.EISDIR)


def _check_dir(tree, record):
    _check_parent(tree, "make directory", record.path)
    if tree.get(record.path):
        raise ChunkPathError(f"cannot make directory {record.path!r}: it already exists",
                             errno.EEXIST)


def _check_exists(tree, record):
    if tree.get(record.path) is None:
        verb = record.kind.name.lower()
        raise ChunkPathError(f"cannot {verb} {record.path!r}: it does not exist", errno.ENOENT)


def _check_rename(tree, record):
    old, new = record.path, record.target
    _check_exists(tree, record)
    if old == new:
        return
    if is_inside(new, old):
        raise ChunkPathError(f"cannot rename {old!r} to {new!r}: a directory cannot move "
                             "into itself", errno.EINVAL)
    _check_parent(tree, "rename to", new)
    source, target = tree.get(old), tree.get(new)
    if target is None:
        return
    # POSIX rename(2): a file replaces a file, a directory replaces an empty directory.
    if source.is_dir != target.is_dir:
        code, what = ((errno.ENOTDIR, "a file") if source.is_dir
                      else (errno.EISDIR, "a directory"))
        raise ChunkPathError(f"cannot rename {old!r} to {new!r}: {new!r} is {what}", code)
    if target.is_dir and tree.listdir(new):
        raise ChunkPathError(f"cannot rename {old!r} to {new!r}: {new!r} is a directory "
                             "that is not empty", errno.ENOTEMPTY)


def _nothing(tree, record):
    pass


_CHECKS = {
    Kind.FILE: _check_file,
    Kind.DIR: _check_dir,
    Kind.REMOVE: _check_exists,
    Kind.RENAME: _check_rename,
    Kind.ATTR: _check_exists,
    Kind.BEGIN: _nothing,
    Kind.COMMIT: _nothing,
}


def _apply_file(tree, r):
    place = Place(r.offset, r.length, r.body_len, r.flags)
    tree._add(IndexEntry(r.path, FILE, r.mode, r.mtime_ns, r.size), place)


def _apply_dir(tree, r):
    tree._add(IndexEntry(r.path, DIR, r.mode, r.mtime_ns, 0))


def _apply_attr(tree, r):
    entry = tree.stat(r.path)
    tree._entries[r.path] = IndexEntry(r.path, entry.kind, r.mode, r.mtime_ns, entry.size)


def _apply_rename(tree, r):
    if r.path != r.target:
        tree._move(r.path, r.target)


_APPLY = {
    Kind.FILE: _apply_file,
    Kind.DIR: _apply_dir,
    Kind.REMOVE: lambda tree, r: tree._remove(r.path),
    Kind.RENAME: _apply_rename,
    Kind.ATTR: _apply_attr,
    Kind.BEGIN: _nothing,
    Kind.COMMIT: _nothing,
}


def replay(records):
    """Return (tree, damage): the tree the records describe, and where replay had to stop.

    Records between BEGIN and COMMIT count only once the COMMIT is read. Replay stops at a
    record that breaks the tree's rules (damage inside: no writer of ours makes one) and
    leaves out a group with no COMMIT (a crash in the middle of it: a torn tail). Either
    way the damage's offset is where the records the tree holds end.
    """
    tree = Tree()
    begin = before = None  # the open group's BEGIN record, and the tree as it was before it
    for record in records:
        problem = None
        if record.kind is Kind.BEGIN:
            if begin is None:
                begin, before, tree = record, tree, tree.copy()
                continue
            problem = "begins a group inside another group"
        elif record.kind is Kind.COMMIT:
            if begin is not None:
                begin = before = None
                continue
            problem = "ends a group that never began"
        else:
            try:
                tree.check(record)
                tree.apply(record)
                continue
            except ChunkPathError as err:
                problem = f"breaks the tree's rules: {err}"
        if begin is None:
            return tree, Damage(record.offset, problem, record.offset)
        return before, Damage(begin.offset, f"begins a group in which the record at offset "
                                            f"{record.offset} {problem}", record.offset)
    if begin is not None:
        return before, Damage(begin.offset, "begins a group of records that was never "
                                            "committed")
    return tree, None
