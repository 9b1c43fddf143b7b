"""Name spaces over SSH: every Geryon service is a file tree served over SFTP.

tree (the synthetic tree: Dir, File, handles, roles), sftp (serving a tree with asyncssh),
server (an SSH listener for a tree), client (dialling one and using its files), ca (the
cluster certificate authority and this machine's identity), enrol and join (getting
certificates with a one-time token).

The names below are loaded on first use, so that importing one pure module of the package
(or of a package that uses it) does not load asyncssh.
"""

import importlib

_PUBLIC = {
    "ROLES": "geryon.roles", "CAError": "geryon.ns.ca",
    "CertificateAuthority": "geryon.ns.ca", "Identity": "geryon.ns.ca",
    "Client": "geryon.ns.client", "RemoteError": "geryon.ns.client",
    "Server": "geryon.ns.server", "NsError": "geryon.errors",
    **{name: "geryon.ns.tree" for name in ("ANYONE", "Caller", "Dir", "File", "Handle",
                                            "MessageHandle", "StaticDir", "TextFile",
                                            "TextHandle")},
}

__all__ = list(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'geryon.ns' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
