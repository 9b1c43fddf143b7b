"""ndb: Inferno's attribute databases (attrdb(6)), such as the cluster file ndb/cluster.

    from geryon.ndb import Database
    db = Database("ndb/cluster")
    db.lookup("name", "d0.mbox", "master")   # -> 'node0!chunk0'

attrdb is the format alone (text <-> entries, no I/O); database reads files, follows
`database=` file lists and re-reads files that change.  See docs/ndb.md.
"""

from geryon.ndb.attrdb import (
    Entry,
    NdbError,
    Pair,
    database_files,
    find,
    format_entry,
    format_line,
    parse,
    parse_line,
    quote,
)
from geryon.ndb.database import DEFAULT_PATH, Database

__all__ = [
    "DEFAULT_PATH",
    "Database",
    "Entry",
    "NdbError",
    "Pair",
    "database_files",
    "find",
    "format_entry",
    "format_line",
    "parse",
    "parse_line",
    "quote",
]
