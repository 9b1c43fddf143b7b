"""Serve a geryon.ns.tree over asyncssh's SFTP server, allowing only what a tree does.

Deny by default, at two levels.  The protocol handler (TreeSFTPHandler) answers only the
requests in REQUESTS and offers only the extensions in EXTENSIONS; any other request
(symlink, hardlink@openssh.com, lsetstat@openssh.com, statvfs, copy-data, locks, and
whatever a later asyncssh adds) is answered "unsupported" before it reaches any code.
Below it, every request method of asyncssh.SFTPServer that TreeSFTPServer does not
implement is replaced by a refusal (see _refuse_the_rest), so that no default handler, all
of which act on the server's real file system, can ever run.

Paths are resolved from the tree's root on every request ('..' cannot climb above it).
Tree errors become SFTP status replies carrying their message; anything unexpected is
logged and answered with a generic failure, and the session keeps serving.  Reads are cut
to SessionLimits.max_read (a short read is legal SFTP); writes longer than max_write and
opens past max_handles are refused with a message naming the limit.

asyncssh answers one session's requests one at a time, so a read that waits holds up its
session: clients give each waiting file its own session (geryon.ns.client does).  A wait is
abandoned when the channel or connection closes, so a dead client never pins a handle.
"""

import logging
import posixpath
import stat as statmod

import asyncssh
from asyncssh import sftp as sftpconst
from asyncssh.sftp import SFTPServerHandler  # the protocol handler, cut down below

from geryon.errors import GeryonError, Unsupported
from geryon.ns.limits import SessionLimits, refuse
from geryon.ns.tree import (Caller, Dir, Exists, File, MessageHandle, NotFound, NsError,
                            PermissionDenied, unless)

log = logging.getLogger("geryon.ns")

CODES = {"no such file": sftpconst.FX_NO_SUCH_FILE,
         "permission denied": sftpconst.FX_PERMISSION_DENIED,
         "file exists": sftpconst.FX_FILE_ALREADY_EXISTS,
         "unsupported": sftpconst.FX_OP_UNSUPPORTED}


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

    def __init__(self, chan, root: Dir, caller: Caller, limits: SessionLimits):
        super().__init__(chan)
        self.root = root
        self.caller = caller
        self.limits = limits

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
        size = min(size, self.limits.max_read)
        if not isinstance(handle, MessageHandle):
            return await handle.read(offset, size)
        # A read that waits ends when its session closes, not only its connection: a
        # client closes a waiting file by closing the session (its close request would
        # queue behind this read).
        return await unless(handle.read(offset, size), self.channel.wait_closed(),
                            why="the session closed while a read waited")

    @guarded
    async def write(self, handle, offset, data):
        if len(data) > self.limits.max_write:
            raise refuse("an SFTP write", len(data), self.limits.max_write, "sftp_max_write")
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
        refuse_owners_and_size(attrs, "set the size through an open file (truncate)")
        setter = getattr(node, "set_attributes", None)
        if setter is not None and (attrs.permissions is not None or attrs.mtime is not None):
            node.check(self.caller, True, path.decode(errors="replace"))
            setter(self.caller, mode=None if attrs.permissions is None
                   else attrs.permissions & 0o7777, mtime=attrs.mtime)
        # synthetic files have nothing to set: accept quietly, as cp -p expects

    @guarded
    async def fsetstat(self, handle, attrs):
        refuse_owners_and_size(attrs, None)
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

    async def readlink(self, path):
        raise asyncssh.SFTPNoSuchFile("no symbolic links here")

    # Helpers of asyncssh's default handlers, which map to real paths: nothing here may
    # ever call them, so they refuse too.
    def map_path(self, path):
        raise asyncssh.SFTPOpUnsupported("no real paths are served here")

    reverse_map_path = map_path


def refuse_owners_and_size(attrs: asyncssh.SFTPAttrs, size_advice: str | None) -> None:
    """Trees keep modes and times, never owners; a path's size is set only when open."""
    if attrs.uid is not None or attrs.gid is not None or attrs.owner or attrs.group:
        raise Unsupported("changing a file's owner or group is not supported here: trees "
                          "have no owners but the roles that may read and write them")
    if size_advice and attrs.size is not None:
        raise Unsupported(f"setting a size by path is not supported here; {size_advice}")


# asyncssh.SFTPServer's methods that are not requests: helpers its handler calls to shape
# replies (no file system access) and the session's exit.
NOT_REQUESTS = frozenset({"convert_attrs", "format_user", "format_group", "format_longname",
                          "exit"})


def _refusal(name: str):
    async def refused(self, *args):
        log.info("%s: refused SFTP request %s", self.caller.identity, name)
        raise asyncssh.SFTPOpUnsupported(f"{name} is not supported on this server")
    refused.__name__ = name
    refused.refused = True
    return refused


def _refuse_the_rest(cls):
    """Replace every request method of asyncssh.SFTPServer that cls does not implement
    with a refusal, so a method a later asyncssh adds is refused too."""
    for name in dir(asyncssh.SFTPServer):
        if name.startswith("_") or name in NOT_REQUESTS or name in vars(cls):
            continue
        if callable(getattr(asyncssh.SFTPServer, name)):
            setattr(cls, name, _refusal(name))
    return cls


_refuse_the_rest(TreeSFTPServer)


# The requests the protocol handler answers; everything else is "unsupported" at once.
REQUESTS = frozenset({
    sftpconst.FXP_OPEN, sftpconst.FXP_CLOSE, sftpconst.FXP_READ, sftpconst.FXP_WRITE,
    sftpconst.FXP_LSTAT, sftpconst.FXP_FSTAT, sftpconst.FXP_SETSTAT, sftpconst.FXP_FSETSTAT,
    sftpconst.FXP_OPENDIR, sftpconst.FXP_READDIR, sftpconst.FXP_REMOVE, sftpconst.FXP_MKDIR,
    sftpconst.FXP_RMDIR, sftpconst.FXP_REALPATH, sftpconst.FXP_STAT, sftpconst.FXP_RENAME,
    sftpconst.FXP_READLINK, b"posix-rename@openssh.com", b"limits@openssh.com"})
EXTENSIONS = frozenset({b"newline", b"vendor-id", b"posix-rename@openssh.com",
                        b"limits@openssh.com"})


class TreeSFTPHandler(SFTPServerHandler):
    """asyncssh's SFTP protocol handler cut down to REQUESTS, with our limits."""

    _extensions = [(name, data) for name, data in SFTPServerHandler._extensions
                   if name in EXTENSIONS]

    def __init__(self, server: TreeSFTPServer, reader, writer, sftp_version: int):
        super().__init__(server, reader, writer, sftp_version)
        self.limits = server.limits

    def _check_handles(self) -> None:
        open_now = len(self._file_handles) + len(self._dir_handles)
        if open_now >= self.limits.max_handles:
            err = refuse("the number of files open on this session", open_now + 1,
                         self.limits.max_handles, "sftp_max_handles")
            raise asyncssh.SFTPFailure(str(err))

    async def _process_open(self, packet):
        self._check_handles()
        return await SFTPServerHandler._process_open(self, packet)

    async def _process_opendir(self, packet):
        self._check_handles()
        return await SFTPServerHandler._process_opendir(self, packet)

    async def _cleanup(self, exc):
        # Files the session leaves open are aborted, not closed: a client that went away
        # mid-write must not have half a file stored (asyncssh would close them).
        handles, self._file_handles = list(self._file_handles.values()), {}
        for handle in handles:
            try:
                await handle.abort()
            except Exception as err:  # one file must not keep the others from ending
                log.warning("%s: abort of an open file failed: %s",
                            self._server.caller.identity, err)
        await super()._cleanup(exc)

    async def _process_limits(self, packet):
        packet.check_end()
        max_write = min(self.limits.max_write, sftpconst.MAX_SFTP_WRITE_LEN)
        return sftpconst.SFTPLimits(max_write + 1024, min(self.limits.max_read,
                                                          sftpconst.MAX_SFTP_READ_LEN),
                                    max_write, self.limits.max_handles)

    _packet_handlers = {kind: handler for kind, handler
                        in SFTPServerHandler._packet_handlers.items() if kind in REQUESTS}
    _packet_handlers.update({sftpconst.FXP_OPEN: _process_open,
                             sftpconst.FXP_OPENDIR: _process_opendir,
                             b"limits@openssh.com": _process_limits})


async def serve_sftp(server: TreeSFTPServer, reader, writer, sftp_version: int) -> None:
    """Run one SFTP session on a tree (the session's stdin and stdout as bytes)."""
    await TreeSFTPHandler(server, reader, writer, sftp_version).run()
