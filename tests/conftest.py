import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import support  # noqa: E402


@pytest.fixture
def home(tmp_path):
    """A fresh cluster CA and this machine's admin certificates, in a GERYON_HOME."""
    return support.make_home(tmp_path / "admin")


@pytest.fixture
def registry(home):
    """A real registry process on a loopback port."""
    proc = support.start_registry(home)
    yield proc
    proc.stop()


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Whatever a test started is gone after it, even when the test failed half way
    (servers of module-scoped fixtures, started before it, are left alone)."""
    before = set(support.Process.running)
    yield
    support.Process.kill_all(keep=before)


@pytest.fixture(scope="session", autouse=True)
def no_leftover_caches():
    """cpu nodes keep unpacked disks on tmpfs and remove them when they stop; a node a
    test SIGKILLed cannot, so what the session's nodes left there is removed at its end."""
    import shutil

    from geryon.node import default_cache_dir
    caches = default_cache_dir(Path("any")).parent  # where every node's cache lives
    before = set(caches.iterdir()) if caches.is_dir() else set()
    yield
    if caches.is_dir():
        for path in set(caches.iterdir()) - before:
            shutil.rmtree(path, ignore_errors=True)
