"""A Database: the entries of one ndb file and the files its `database=` entry lists,
always as they are on disk now.

Every query first stats each file and reads again any whose identity (device, inode),
size, modification or change time moved, so a long-running `refresh --watch` sees edits
without being told.  A file is stat'ed from the descriptor it is read through, so an edit
that lands while it is being read shows as a change at the next query.

As in attrdb(6), the first file's `database` entry lists the files (`file=NAME`) making up
the database, in order; the first file goes where it is listed, or first when it is not.
Relative names are taken from the first file's directory.  Each file is read once even
when listed twice, and files the others list are not followed further.
"""

import os
from dataclasses import dataclass

from geryon.ndb.attrdb import Entry, NdbError, database_files, find, parse

DEFAULT_PATH = "ndb/cluster"


@dataclass
class _File:
    stamp: tuple
    entries: list[Entry]


class Database:
    """The entries of an ndb file (and the files it includes), re-read when they change."""

    def __init__(self, path: str | os.PathLike = DEFAULT_PATH):
        self.path = os.fspath(path)
        self._cache: dict[str, _File] = {}  # file name as shown -> what was read
        self._files: list[str] = []

    def files(self) -> list[str]:
        """The files making up the database, in the order they are searched."""
        self._refresh()
        return list(self._files)

    def entries(self) -> list[Entry]:
        """Every entry of every file, in database order."""
        self._refresh()
        return [e for name in self._files for e in self._cache[name].entries]

    def query(self, attr: str, value: str | None = None, rattr: str | None = None):
        """The first entry with attr (=value) (and rattr), or None: `ndb/query attr value`."""
        return next(find(self.entries(), attr, value, rattr), None)

    def query_all(self, attr: str, value: str | None = None,
                  rattr: str | None = None) -> list[Entry]:
        """Every entry with attr (=value) (and rattr): `ndb/query -a attr value`."""
        return list(find(self.entries(), attr, value, rattr))

    def lookup(self, attr: str, value: str | None, rattr: str) -> str | None:
        """The value `ndb/query attr value rattr` prints: rattr's closest-bound value in
        the first entry with attr=value and rattr; None when there is none."""
        entry = self.query(attr, value, rattr)
        return entry.findbyattr(attr, value, rattr)[0] if entry else None

    def lookup_all(self, attr: str, value: str | None, rattr: str) -> list[str]:
        """The values `ndb/query -a attr value rattr` prints: every rattr of every entry
        with attr=value, each entry's closest-bound values first."""
        return [v for e in self.query_all(attr, value, rattr)
                for v in e.findbyattr(attr, value, rattr)]

    def _refresh(self) -> None:
        root = self._read(self.path)
        listed = database_files(root.entries) or []
        here = os.path.dirname(self.path)
        names: list[str] = []
        seen: set[str] = set()
        for name in listed:
            shown = name if os.path.isabs(name) else os.path.join(here, name)
            key = os.path.normpath(os.path.abspath(shown))
            if key not in seen:
                seen.add(key)
                names.append(self.path if key == _key(self.path) else shown)
        if _key(self.path) not in seen:
            names.insert(0, self.path)
        for name in names:
            if name != self.path:
                self._read(name, listed_in=self.path)
        self._files = names
        for stale in set(self._cache) - set(names):
            del self._cache[stale]

    def _read(self, name: str, listed_in: str | None = None) -> _File:
        """The file's entries, read again only if the file changed since last time."""
        cached = self._cache.get(name)
        try:
            if cached and _stamp(os.stat(name)) == cached.stamp:
                return cached
            with open(name, "rb") as f:
                stamp = _stamp(os.fstat(f.fileno()))
                data = f.read()
        except FileNotFoundError:
            hint = (f"it is listed by the database entry in {listed_in}; create it or remove "
                    "its file= pair") if listed_in else "create it or name another file"
            raise NdbError(f"ndb file {name} does not exist; {hint}") from None
        except OSError as err:
            raise NdbError(f"ndb file {name} cannot be read: {err.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            lineno = data.count(b"\n", 0, err.start) + 1
            raise NdbError(f"byte {err.start} is not UTF-8; ndb files are UTF-8 text",
                           name, lineno) from None
        self._cache[name] = _File(stamp, parse(text, source=name))
        return self._cache[name]


def _key(name: str) -> str:
    return os.path.normpath(os.path.abspath(name))


def _stamp(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
