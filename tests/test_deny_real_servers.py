"""The attacks that once worked, made again with OpenSSH `sftp` against a real registry and
a real node, each with a monitor-only certificate: every one is refused, and nothing in the
registry's state, the node's chunk directory or a canary directory beside them changes."""

import subprocess

import pytest

from support import (GERYON, env_for, member_home, make_home, ssh_options, start_node,
                     start_registry)
from test_deny_by_default import snapshot


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("real")
    admin = make_home(base / "admin")
    monitor = member_home(admin, base / "monitor", "watcher", "monitor")
    registry = start_registry(admin, extra=("--state", str(base / "state")))
    node = start_node(admin, registry.address, base / "chunks", "node0", 1, "1M")
    canary = base / "canary"
    canary.mkdir()
    (canary / "secret").write_text("do not touch\n")
    chunk_port = int(subprocess.run(
        [GERYON, "regquery", "-R", registry.address, "-n", "resource", "kfs"],
        env=env_for(admin), capture_output=True, text=True, check=True).stdout.split("!")[-1])
    yield {"monitor": monitor, "registry": registry.port, "node": chunk_port,
           "watched": [base / "state", base / "chunks", canary], "canary": canary}
    node.stop()
    registry.stop()


ATTACKS = ["ln -s {canary}/secret {canary}/soft", "ln {canary}/secret {canary}/hard",
           "ln -s /index /evil", "chmod -h 777 /{some}", "chown -h 0 /{some}",
           "chgrp 0 /{some}", "df /"]


@pytest.mark.parametrize("server", ["registry", "node"])
@pytest.mark.parametrize("attack", ATTACKS)
def test_an_attack_that_once_worked_is_refused(cluster, server, attack):
    before = [snapshot(path) for path in cluster["watched"]]
    some = "index" if server == "registry" else "."
    command = attack.format(canary=cluster["canary"], some=some)
    result = subprocess.run(["sftp", *ssh_options(cluster["monitor"]), "-P",
                             str(cluster[server]), "-b", "-", "watcher@127.0.0.1"],
                            input=command + "\n", capture_output=True, text=True, timeout=30,
                            cwd=cluster["monitor"])
    assert result.returncode != 0, f"{command} on the {server}: {result.stdout}"
    assert [snapshot(path) for path in cluster["watched"]] == before
    again = subprocess.run(["sftp", *ssh_options(cluster["monitor"]), "-P",
                            str(cluster[server]), "-b", "-", "watcher@127.0.0.1"],
                           input="ls /\n", capture_output=True, text=True, timeout=30,
                           cwd=cluster["monitor"])
    assert again.returncode == 0, again.stderr  # and it still serves
