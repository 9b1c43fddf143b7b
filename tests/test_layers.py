"""The layering ARCHITECTURE.md states, checked on what importing a module really loads:
chunkfs (the chunk format and the tree a node serves) uses no registry, ndb, SSH client or
disks; the disks' pure cores load no asyncio or asyncssh."""

import pkgutil
import subprocess
import sys

import pytest

import geryon.chunkfs


def loaded_by(module: str) -> set:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return set(out.split())


CHUNKFS = [f"geryon.chunkfs.{m.name}" for m in pkgutil.iter_modules(geryon.chunkfs.__path__)]


@pytest.mark.parametrize("module", ["geryon.chunkfs", *CHUNKFS])
def test_chunkfs_imports_no_registry_ndb_ssh_client_or_disks(module):
    assert not {m for m in loaded_by(module) if m.startswith(
        ("geryon.registry", "geryon.ndb", "geryon.ns.client", "geryon.disks"))}


@pytest.mark.parametrize("module", ["geryon.disks", "geryon.disks.errors", "geryon.disks.names",
                                    "geryon.disks.plan"])
def test_the_disks_pure_core_loads_no_asyncio_or_asyncssh(module):
    assert not {"asyncio", "asyncssh"} & loaded_by(module)
