"""`geryon node --worker`: the same node that serves disks and a cpu pulls Owen tasks."""

from support import cpu_options, make_home, start_node, start_registry
from test_owen_sched import LINES, check_md5_records, nodes_up, owen, start_sched


def test_a_node_with_disks_a_cpu_and_a_worker_runs_the_seeds_filesplit_job(tmp_path):
    home = make_home(tmp_path / "admin")
    registry = start_registry(home)
    sched = start_sched(home, tmp_path / "sched")
    node = start_node(home, registry.address, tmp_path / "chunks", "node0", 1, "1M",
                      extra=(*cpu_options(tmp_path / "state", "1M"), "--worker", "--worker-root", str(tmp_path / "worker"),
                             "--sched", sched.address, "--install", "test"))
    try:
        nodes_up(home, sched.address, ["node0"])
        (tmp_path / "mytasks").write_text("".join(line + "\n" for line in LINES))
        job = owen(home, sched.address, "start", "filesplit", "-l", "mytasks", "test",
                   "md5sum", cwd=tmp_path).stdout.strip()
        owen(home, sched.address, "wait", job, cwd=tmp_path)
        check_md5_records((tmp_path / "mytasks.result").read_bytes(), LINES)
        assert (tmp_path / "worker" / "test.job").exists()
    finally:
        node.stop()
        sched.stop()
        registry.stop()
