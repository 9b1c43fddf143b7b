"""Owen (issue 10): a filesplit md5sum job beside xargs -P2 and GNU parallel -j2, and a
scheduler with many simulated workers connected at once.

    .venv/bin/python bench/owen.py [--lines 10000] [--workers 1000] [--tasks 5000]

Part 1 starts a real `geryon sched` and one `geryon worker --slots 2 --install test` on
loopback and times `geryon owen start filesplit -l FILE test md5sum` + `geryon owen wait`,
then `xargs -P2` and `parallel -j2` running `md5sum` on each line of the same file.
Part 2 connects --workers simulated workers from this one process (one SSH connection
each, the worker protocol spoken directly) to a scheduler process, runs a job of --tasks
tasks whose results are handed in at once, and reports the dispatch rate and the
scheduler's memory per connected worker.
"""

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import GERYON, Process, env_for, make_home, wait_for  # noqa: E402

KEEPALIVE = 10.0   # seconds between the simulated workers' SSH keepalives


def cpu_seconds(pid: int, children: bool = False) -> float:
    """CPU time a process has used (with children: also that of its children waited for)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15 if children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def runners_cpu(worker: int) -> float:
    """CPU time of a worker's runner shells and every task they ran (waited for)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(worker)], capture_output=True,
                         text=True).stdout.split()
    total = 0.0
    for pid in out:
        try:
            total += cpu_seconds(int(pid), children=True)
        except (OSError, ValueError):
            pass
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_sched(home: Path, tmp: Path) -> Process:
    port_file = tmp / "sched.port"
    proc = Process(home, ["sched", "-a", "tcp!127.0.0.1!0", "--state", str(tmp / "state"),
                          "--port-file", str(port_file)], port_file)
    proc.address = f"tcp!127.0.0.1!{proc.port}"
    return proc


def timed(argv, **kw) -> float:
    start = time.monotonic()
    subprocess.run(argv, check=True, **kw)
    return time.monotonic() - start


def part1(tmp: Path, lines: int) -> None:
    home = make_home(tmp / "home")
    data = tmp / "mytasks"
    data.write_text("".join(f"line {i} of the benchmark input\n" for i in range(lines)))
    sched = start_sched(home, tmp)
    root = tmp / "worker"
    ready = tmp / "worker.ready"
    worker = Process(home, ["worker", "--root", str(root), "--slots", "2", "--install",
                            "test", "--name", "bench", "--ready", str(ready)], ready,
                     GERYON_SCHED=sched.address)
    env = env_for(home, GERYON_SCHED=sched.address)
    wait_for(lambda: "bench state idle" in subprocess.run(
        [GERYON, "owen", "nodes"], env=env, capture_output=True, text=True).stdout, 20)
    cpu = (cpu_seconds(sched.proc.pid), cpu_seconds(worker.proc.pid),
           runners_cpu(worker.proc.pid), children_cpu())
    start = time.monotonic()
    id = subprocess.run([GERYON, "owen", "start", "filesplit", "-l", str(data), "test",
                         "md5sum"], env=env, capture_output=True, text=True,
                        check=True).stdout.strip()
    subprocess.run([GERYON, "owen", "wait", id], env=env, check=True, capture_output=True)
    owen = time.monotonic() - start
    used = [after - before for before, after in zip(cpu, (
        cpu_seconds(sched.proc.pid), cpu_seconds(worker.proc.pid),
        runners_cpu(worker.proc.pid), children_cpu()))]
    assert Path(f"{data}.result").stat().st_size > 0
    worker.stop()
    sched.stop()
    before = children_cpu()
    with open(data, "rb") as f:
        xargs = timed(["xargs", "-P2", "-d", "\n", "-n1", "sh", "-c",
                       'printf "%s\\n" "$1" | md5sum', "_"], stdin=f, stdout=subprocess.DEVNULL)
    xargs_cpu = children_cpu() - before
    parallel = None
    if shutil.which("parallel"):
        with open(data, "rb") as f:
            parallel = timed(["parallel", "-j2", "--pipe", "-N1", "md5sum"], stdin=f,
                             stdout=subprocess.DEVNULL)
    print(f"part 1: {lines} lines, md5sum per line, 2 task slots")
    print(f"  geryon owen (start + wait): {owen:7.2f} s  {lines / owen:7.0f} tasks/s")
    print(f"  xargs -P2 sh -c ...:        {xargs:7.2f} s  {lines / xargs:7.0f} tasks/s")
    if parallel is not None:
        print(f"  parallel -j2 --pipe -N1:    {parallel:7.2f} s  {lines / parallel:7.0f} tasks/s")
    print(f"  geryon / xargs = {xargs / owen:.2f}x"
          + (f", geryon / parallel = {parallel / owen:.2f}x" if parallel else ""))
    ms = [1000 * u / lines for u in used]
    print(f"  CPU per task: scheduler {ms[0]:.2f} ms, worker {ms[1]:.2f} ms, its shells and "
          f"md5sum {ms[2]:.2f} ms, owen start + wait {ms[3]:.2f} ms (total "
          f"{sum(ms):.2f} ms); xargs and its sh and md5sum {1000 * xargs_cpu / lines:.2f} ms")


async def simulated_worker(address, identity, name, done: list, stop: asyncio.Event,
                           connected: list):
    """One worker with one slot, as cheap as it can be: one open `task` for every task,
    a `test true` result at once, the read of the next offer sent with it."""
    from geryon.ns.client import Client
    from geryon.owen import wire
    client = await Client.connect(address, identity, timeout=120, keepalive=KEEPALIVE)
    await client.write("/nodename", name)
    await client.write("/attrs", "ncpu 1\njobtype0 test\n")
    connected.append(name)
    sftp = await client.session()
    f = await sftp.open("/task", "r+b", block_size=0)
    result = wire.format_result(True, b"ok\n")
    try:
        data = await f.read(1 << 16, 0)
        while not stop.is_set():
            reader = wire.OfferReader(1 << 20)
            while reader.feed(data) is None:
                data = await f.read(1 << 16, 0)
            # the result, and the read of the next offer behind it (the session keeps
            # their order)
            _, data = await asyncio.gather(f.write(result, 0), f.read(1 << 16, 0))
            done.append(time.monotonic())
    finally:
        await client.close()


async def part2_async(tmp: Path, workers: int, tasks: int) -> None:
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client
    home = make_home(tmp / "home2")
    os.environ["GERYON_HOME"] = str(home)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * workers + 256)), hard))
    sched = start_sched(home, tmp / "s2")
    identity = Identity(home)
    before = rss_kib(sched.proc.pid)
    done, connected, stop = [], [], asyncio.Event()
    start = time.monotonic()
    runners = []
    for i in range(workers):
        runners.append(asyncio.ensure_future(simulated_worker(sched.address, identity,
                                                              f"sim{i}", done, stop,
                                                              connected)))
        if i % 50 == 49:
            await asyncio.sleep(0.2)
    while len(connected) < workers:
        await asyncio.sleep(0.2)
        if time.monotonic() - start > 600:
            raise SystemExit(f"only {len(connected)} workers connected in 600 s")
    await asyncio.sleep(2)
    connect_time = time.monotonic() - start
    idle_rss = rss_kib(sched.proc.pid)
    data = tmp / "tasks2"
    data.write_text("".join(f"{i}\n" for i in range(tasks)))
    client = await Client.connect(sched.address, identity)
    from geryon.owen.control import Controller
    c = Controller(client)
    t0 = time.monotonic()
    id = await c.job(["filesplit", "-l", str(data), "test", "true"], start=True)
    await c.wait(id)
    elapsed = time.monotonic() - t0
    peak = rss_kib(sched.proc.pid)
    stop.set()
    for r in runners:
        r.cancel()
    await c.close()
    sched.stop()
    print(f"part 2: {workers} simulated workers connected in {connect_time:.1f} s")
    print(f"  {tasks} tasks dispatched and handed in: {elapsed:.2f} s, "
          f"{tasks / elapsed:.0f} tasks/s (all in one client process on the same 2 cores)")
    print(f"  scheduler RSS: {before / 1024:.1f} MiB alone, {idle_rss / 1024:.1f} MiB with "
          f"the workers, {(idle_rss - before) / workers:.1f} KiB per worker; "
          f"{peak / 1024:.1f} MiB after the job")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--skip", choices=("1", "2"), default="")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-owen-"))
    try:
        if args.skip != "1":
            part1(tmp, args.lines)
        if args.skip != "2":
            asyncio.run(part2_async(tmp, args.workers, args.tasks))
    finally:
        Process.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
