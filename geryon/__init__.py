"""Geryon: a small, shell-native compute cluster.

Every service is an SSH server whose state and controls are a file tree served over SFTP
(see docs/).  Packages: ns (trees over SSH, the cluster CA), registry, chunkfs, rcpu,
mapreduce, owen, web; cli is the `geryon` command.
"""

__version__ = "0.1.0"


def _quicken_asyncssh_import() -> None:
    """Spare every command ~60 ms of start-up in importing asyncssh.

    - Its post-quantum module asks ctypes.util.find_library for liboqs twice, and on Linux
      each ask runs ldconfig and then gcc.  Just before that module loads, find_library is
      given a quick answer for those two names (liboqs.so* in the directories the loader
      searches, else None); every other name goes to the original.
    - Its X.509 support, which it loads only if it can, loads most of cryptography's x509
      package.  Geryon uses OpenSSH certificates and never X.509, so that module is
      reported missing, as asyncssh allows.
    """
    import sys

    class AsyncsshStartup:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name == "asyncssh.crypto.pq":
                _quicken_find_library()
            elif name == "asyncssh.crypto.x509":
                raise ImportError("Geryon uses OpenSSH certificates, not X.509")
            return None  # the ordinary finders load the module

    sys.meta_path.insert(0, AsyncsshStartup)


def _quicken_find_library() -> None:
    import ctypes.util
    import glob
    import os
    import sysconfig

    original = ctypes.util.find_library
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [*filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(":")),
            f"/usr/local/lib/{arch}", "/usr/local/lib", f"/usr/lib/{arch}", f"/lib/{arch}",
            "/usr/lib64", "/lib64", "/usr/lib", "/lib"]

    def find_library(name):
        if name not in ("oqs", "liboqs"):
            return original(name)
        for directory in dirs:
            found = sorted(glob.glob(os.path.join(directory, "liboqs.so*")))
            if found:
                return os.path.basename(found[-1])
        return None

    ctypes.util.find_library = find_library


_quicken_asyncssh_import()
