"""Geryon: a small, shell-native compute cluster.

Every service is an SSH server whose state and controls are a file tree served over SFTP
(see docs/).  Packages: ns (trees over SSH, the cluster CA), registry, chunkfs, rcpu,
mapreduce, owen, web; cli is the `geryon` command.
"""

__version__ = "0.1.0"


def _install_quick_oqs_lookup() -> None:
    """Spare every command ~40 ms of start-up.

    When asyncssh is imported, its post-quantum module asks ctypes.util.find_library for
    liboqs twice, and on Linux each ask runs ldconfig and then gcc.  Just before that module
    loads, find_library is given a quick answer for those two names (liboqs.so* in the
    directories the loader searches, else None); every other name goes to the original.
    """
    import sys

    class QuickOQSLookup:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name == "asyncssh.crypto.pq":
                sys.meta_path.remove(QuickOQSLookup)
                _quicken_find_library()
            return None  # the ordinary finders load the module

    sys.meta_path.insert(0, QuickOQSLookup)


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


_install_quick_oqs_lookup()
