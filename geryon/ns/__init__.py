"""Name spaces over SSH: every Geryon service is a file tree served over SFTP.

tree (the synthetic tree: Dir, File, handles, roles), sftp (serving a tree with asyncssh),
server (an SSH listener for a tree), client (dialling one and using its files), ca (the
cluster certificate authority and this machine's identity), enrol and join (getting
certificates with a one-time token).
"""

from geryon.ns.ca import ROLES, CAError, CertificateAuthority, Identity
from geryon.ns.client import Client, RemoteError
from geryon.ns.server import Server
from geryon.ns.tree import (ANYONE, Caller, Dir, File, Handle, MessageHandle, NsError,
                            StaticDir, TextFile, TextHandle)

__all__ = ["ROLES", "CAError", "CertificateAuthority", "Identity", "Client", "RemoteError",
           "Server", "ANYONE", "Caller", "Dir", "File", "Handle", "MessageHandle", "NsError",
           "StaticDir", "TextFile", "TextHandle"]
