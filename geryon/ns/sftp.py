"""Serve a geryon.ns.tree over asyncssh's SFTP server.

Paths are resolved from the tree's root on every request ('..' cannot climb above it).
Tree errors become SFTP status replies carrying their message; anything unexpected is
logged and answered with a generic failure, and the session keeps serving.

asyncssh answers one session's requests one at a time, so a read that waits holds up its
session: clients give each waiting file its own session (geryon.ns.client does).  A wait is
abandoned when the channel or connection closes, so a dead client never pins a handle.
"""

import logging
import posixpath
import stat as statmod

import asyncssh
from asyncssh import sftp as sftpconst

from geryon.errors import GeryonError
from geryon.ns.tree import (Caller, Dir, Exists, File, MessageHandle, NotFound, NsError,
                            PermissionDenied, unless)

log = logging.getLogger("geryon.ns")

CODES = {"no such file": sftpconst.FX_NO_SUCH_FILE,
         "permission denied": sftpconst.FX_PERMISSION_DENIED,
         "file exists": sftpconst.FX_FILE_ALREADY_EXISTS}


def sftp_error(err: Exception) -> asyncssh.SFTPError:
    if isinstance(err, NsError):
        return asyncssh.SFTPError(CODES.get(err.kind, sftpconst.FX_FAILURE), str(err))
    if isinstance(err, GeryonError):  # any error meant for people goes back as it is
        return asyncssh.SFTPError(sftpconst.FX_FAILURE, str(err))
    return asyncssh.SFTPError(sftpconst.FX_FAILURE, f"internal error: {type(err).__name__}")


def guarded(method):
    """Run a request handler, turning our errors into SFTP errors (and logging bugs)."""
    async def wrapper(self, *args):
        try:
            return await method(self, *args)
        except asyncssh.SFTPError:
            raise
        except GeryonError as err:
            raise sftp_error(err) from None
        except ConnectionError:
            raise
        except Exception as err:  # a bug must not take the server down: log it, answer it
            log.exception("%s: request %s%r failed", self.caller.identity, method.__name__, args)
            raise sftp_error(err) from None
    wrapper.__name__ = method.__name__
    return wrapper


def split_path(path: bytes) -> list[str]:
    try:
        text = path.decode("utf-8")
    except UnicodeDecodeError:
        raise NotFound(f"{path!r}: path is not UTF-8") from None
    if "\0" in text:
        raise NotFound(f"{text!r}: path holds a NUL byte")
    norm = posixpath.normpath("/" + text)
    return [p for p in norm.split("/") if p]


class TreeSFTPServer(asyncssh.SFTPServer):
    """One SFTP session on a tree, on behalf of one Caller."""

    def __init__(self, chan, root: Dir, caller: Caller):
        super().__init__(chan)
        self.root = root
        self.caller = caller

    def walk(self, parts: list[str]):
        node = self.root
        for i, name in enumerate(parts):
            if not isinstance(node, Dir):
                raise NotFound(f"/{'/'.join(parts[:i])} is not a directory")
            node.check(self.caller, False, "/" + "/".join(parts[:i]))
            child = node.child(name, self.caller)
            if child is None:
                raise NotFound(f"/{'/'.join(parts[:i + 1])}: no such file")
            node = child
        return node

    def parent(self, path: bytes):
        parts = split_path(path)
        if not parts:
            raise PermissionDenied("/: the root cannot be changed")
        parent = self.walk(parts[:-1])
        if not isinstance(parent, Dir):
            raise NotFound(f"/{'/'.join(parts[:-1])} is not a directory")
        return parent, parts[-1], "/" + "/".join(parts)

    def attrs(self, node) -> asyncssh.SFTPAttrs:
        st = node.stat(self.caller)
        perm = st.mode & 0o777 if st.mode is not None else 0o444 | (0o222 if st.writable else 0)
        if st.is_dir:
            mode = statmod.S_IFDIR | perm | 0o111
        else:
            mode = statmod.S_IFREG | perm
        return asyncssh.SFTPAttrs(type=sftpconst.FILEXFER_TYPE_DIRECTORY if st.is_dir
                                  else sftpconst.FILEXFER_TYPE_REGULAR,
                                  size=st.size, permissions=mode, uid=0, gid=0,
                                  owner="geryon", group="geryon",
                                  atime=int(st.mtime), mtime=int(st.mtime))

    @guarded
    async def open(self, path, pflags, attrs):
        read = bool(pflags & sftpconst.FXF_READ)
        write = bool(pflags & (sftpconst.FXF_WRITE | sftpconst.FXF_APPEND))
        parts = split_path(path)
        name = "/" + "/".join(parts)
        try:
            node = self.walk(parts)
        except NotFound:
            if not pflags & sftpconst.FXF_CREAT:
                raise
            parent, leaf, name = self.parent(path)
            parent.check(self.caller, True, name)
            node = parent.create(leaf, self.caller)
        else:
            if pflags & sftpconst.FXF_CREAT and pflags & sftpconst.FXF_EXCL:
                raise Exists(f"{name}: file exists")
        if not isinstance(node, File):
            raise PermissionDenied(f"{name} is a directory")
        if read:
            node.check(self.caller, False, name)
        if write:
            node.check(self.caller, True, name)
        handle = await node.open(self.caller, read, write)
        if write and pflags & sftpconst.FXF_TRUNC:
            await handle.truncate(0)
        return handle

    @guarded
    async def read(self, handle, offset, size):
        if not isinstance(handle, MessageHandle):
            return await handle.read(offset, size)
        # A read that waits ends when its session closes, not only its connection: a
        # client closes a waiting file by closing the session (its close request would
        # queue behind this read).
        return await unless(handle.read(offset, size), self.channel.wait_closed(),
                            why="the session closed while a read waited")

    @guarded
    async def write(self, handle, offset, data):
        await handle.write(offset, data)
        return len(data)

    @guarded
    async def close(self, handle):
        await handle.close()

    @guarded
    async def fstat(self, handle):
        return asyncssh.SFTPAttrs(type=sftpconst.FILEXFER_TYPE_REGULAR, size=handle.size(),
                                  permissions=statmod.S_IFREG | 0o644)

    @guarded
    async def stat(self, path):
        return self.attrs(self.walk(split_path(path)))

    lstat = stat

    @guarded
    async def setstat(self, path, attrs):
        node = self.walk(split_path(path))
        setter = getattr(node, "set_attributes", None)
        if setter is not None and (attrs.permissions is not None or attrs.mtime is not None):
            node.check(self.caller, True, path.decode(errors="replace"))
            setter(self.caller, mode=None if attrs.permissions is None
                   else attrs.permissions & 0o7777, mtime=attrs.mtime)
        # synthetic files have nothing to set: accept quietly, as cp -p expects

    @guarded
    async def fsetstat(self, handle, attrs):
        if attrs.size is not None:
            await handle.truncate(attrs.size)
        if attrs.permissions is not None or attrs.mtime is not None:
            handle.set_attributes(None if attrs.permissions is None
                                  else attrs.permissions & 0o7777, attrs.mtime)

    async def scandir(self, path):
        try:
            node = self.walk(split_path(path))
            if not isinstance(node, Dir):
                raise NotFound(f"{path.decode(errors='replace')} is not a directory")
            node.check(self.caller, False, path.decode(errors="replace"))
            entries = node.entries(self.caller)
        except GeryonError as err:
            raise sftp_error(err) from None
        yield asyncssh.SFTPName(b".", attrs=self.attrs(node))
        yield asyncssh.SFTPName(b"..", attrs=self.attrs(node))
        for name, child in sorted(entries.items()):
            try:
                attrs = self.attrs(child)
            except GeryonError:
                continue  # gone while listing
            yield asyncssh.SFTPName(name.encode(), attrs=attrs)

    @guarded
    async def realpath(self, path):
        return ("/" + "/".join(split_path(path))).encode()

    @guarded
    async def mkdir(self, path, attrs):
        parent, leaf, name = self.parent(path)
        parent.check(self.caller, True, name)
        parent.mkdir(leaf, self.caller)

    @guarded
    async def remove(self, path):
        parent, leaf, name = self.parent(path)
        parent.check(self.caller, True, name)
        if parent.child(leaf, self.caller) is None:
            raise NotFound(f"{name}: no such file")
        parent.remove(leaf, self.caller)

    rmdir = remove

    @guarded
    async def rename(self, oldpath, newpath):
        parent, leaf, name = self.parent(oldpath)
        target, new_leaf, new_name = self.parent(newpath)
        parent.check(self.caller, True, name)
        target.check(self.caller, True, new_name)
        parent.rename(leaf, target, new_leaf, self.caller)

    posix_rename = rename

    async def statvfs(self, path):
        raise asyncssh.SFTPOpUnsupported("statvfs is not supported on synthetic trees")

    async def readlink(self, path):
        raise asyncssh.SFTPNoSuchFile("no symbolic links here")
