"""Registry benchmark (issue 2): find latency, registration rate and memory per entry with
10,000 live entries, and start-up time of `geryon -h`.

A real registry process on loopback (tests/support.start_registry) is filled by one client
connection that keeps every `new` file open, so all entries stay live while we measure:

  registrations  first SEQUENTIAL one at a time (open `new`, write, keep it open), then the
                 rest pipelined: asyncio.gather over the same connection and SFTP session,
                 at most WINDOW registrations in flight
  find           50 finds on the empty registry first (the protocol's floor), then
                 QUERIES filters `group gN` (each matches ENTRIES/GROUPS entries), one after
                 another, each Client.write('/find', filter, read_back=True) timed alone
  memory         VmRSS of the registry process before the first and after the last
                 registration, divided by the entries
  start-up       `geryon -h` against `python -c pass` (the same interpreter), with hyperfine
                 if it is installed, else a loop of STARTS runs of each

Run from the repository root:  .venv/bin/python bench/registry.py [--entries N]
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import support  # noqa: E402

ENTRIES = 10_000
SEQUENTIAL = 1_000
WINDOW = 256
GROUPS = 2_000  # filter `group gN` matches ENTRIES / GROUPS = 5 entries
QUERIES = 200
STARTS = 20
TIME_LIMIT = 240  # seconds for the registry part; the whole run stays under 5 minutes


def rss_kib(pid: int) -> int:
    """Resident set size of a process, in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def registration(i: int) -> str:
    return f"tcp!127.0.0.1!{20000 + i} svc bench{i} group g{i % GROUPS} resource kfs"


async def fill_and_query(home: Path, registry, entries: int) -> dict:
    from geryon.ns.ca import Identity
    from geryon.ns.client import Client
    from geryon.registry.core import Registry

    client = await Client.connect(registry.address, Identity(home))
    held = []

    async def register(i):
        f = await client.open("/new", "w")
        await f.write(registration(i))
        held.append(f)

    try:
        # warm the connection; the find latency of an empty registry is the protocol's floor
        empty = []
        for _ in range(50):
            start = time.perf_counter()
            await client.write("/find", "group g0", read_back=True)
            empty.append(time.perf_counter() - start)
        rss_before = rss_kib(registry.proc.pid)

        sequential = min(SEQUENTIAL, entries)
        start = time.perf_counter()
        for i in range(sequential):
            await register(i)
        seq_seconds = time.perf_counter() - start

        window = asyncio.Semaphore(WINDOW)

        async def windowed(i):
            async with window:
                await register(i)

        start = time.perf_counter()
        await asyncio.gather(*(windowed(i) for i in range(sequential, entries)))
        pipe_seconds = time.perf_counter() - start

        index = await client.read("/index")
        held_now = index.count(b"\n")
        assert held_now == entries, f"index holds {held_now} entries, not {entries}"
        rss_after = rss_kib(registry.proc.pid)

        latencies = []
        for q in range(QUERIES):
            group = (q * 7919) % GROUPS
            start = time.perf_counter()
            answer = await client.write("/find", f"group g{group}", read_back=True)
            latencies.append(time.perf_counter() - start)
            want = len(range(group, entries, GROUPS))
            assert answer.count(b"\n") == want, f"find group g{group}: {answer[:200]!r}"

        start = time.perf_counter()
        for _ in range(20):
            await client.read("/index")
        index_seconds = (time.perf_counter() - start) / 20

        # the same work with no I/O, to tell the registry's own cost from the protocol's
        core = Registry()
        for i in range(entries):
            core.register(registration(i).encode(), "admin-1")
        start = time.perf_counter()
        for q in range(QUERIES):
            core.text(core.find(f"group g{q % GROUPS}".encode()))
        core_find = (time.perf_counter() - start) / QUERIES
        start = time.perf_counter()
        for _ in range(20):
            core.index()
        core_index = (time.perf_counter() - start) / 20

        start = time.perf_counter()
        await asyncio.gather(*(f.close() for f in held))
        close_seconds = time.perf_counter() - start
        left = await client.read("/index")
        assert left == b"", f"{len(left.splitlines())} entries left after closing their files"
    finally:
        await client.close()

    pipelined = entries - sequential
    return {
        "entries": entries,
        "seq_rate": sequential / seq_seconds,
        "pipe_rate": pipelined / pipe_seconds if pipelined else float("nan"),
        "find_median": statistics.median(latencies),
        "find_p95": percentile(latencies, 95),
        "find_min": min(latencies),
        "find_empty": statistics.median(empty),
        "matches": entries // GROUPS,
        "index": index_seconds,
        "core_find": core_find,
        "core_index": core_index,
        "close_rate": entries / close_seconds,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "per_entry": (rss_after - rss_before) * 1024 / entries,
    }


def startup(home: Path) -> dict:
    """Mean and median start-up (seconds) of `geryon -h` and `python -c pass`."""
    commands = {"geryon -h": [support.GERYON, "-h"],
                "python -c pass": [sys.executable, "-c", "pass"]}
    env = support.env_for(home)
    if shutil.which("hyperfine"):
        out = home / "hyperfine.json"
        subprocess.run(["hyperfine", "-N", "--warmup", "3", "--runs", str(STARTS),
                        "--export-json", str(out), "--style", "none",
                        *(" ".join(c) for c in commands.values())],
                       env=env, check=True, capture_output=True, timeout=120)
        results = json.loads(out.read_text())["results"]
        return {"tool": f"hyperfine -N --warmup 3 --runs {STARTS}",
                **{name: (r["mean"], r["median"], r["stddev"])
                   for name, r in zip(commands, results)}}
    timings = {}
    for name, command in commands.items():
        subprocess.run(command, env=env, capture_output=True, check=True)  # warm up
        runs = []
        for _ in range(STARTS):
            start = time.perf_counter()
            subprocess.run(command, env=env, capture_output=True, check=True)
            runs.append(time.perf_counter() - start)
        timings[name] = (statistics.mean(runs), statistics.median(runs), statistics.stdev(runs))
    return {"tool": f"subprocess loop, {STARTS} runs", **timings}


def report(r: dict, s: dict) -> None:
    ms = 1000
    rows = [
        ("find median, `group gN` matching %d of %d" % (r["matches"], r["entries"]),
         f"{r['find_median'] * ms:.1f} ms", "< 20 ms", r["find_median"] < 0.020),
        ("find p95", f"{r['find_p95'] * ms:.1f} ms", "", None),
        ("find min", f"{r['find_min'] * ms:.1f} ms", "", None),
        ("find median, empty registry (protocol floor)", f"{r['find_empty'] * ms:.1f} ms", "",
         None),
        (f"registrations/s, pipelined (window {WINDOW})", f"{r['pipe_rate']:.0f}/s",
         ">= 1000/s", r["pipe_rate"] >= 1000),
        ("registrations/s, one at a time", f"{r['seq_rate']:.0f}/s", "", None),
        ("entries removed/s when their files close", f"{r['close_rate']:.0f}/s", "", None),
        ("registry RSS empty -> full", f"{r['rss_before'] / 1024:.1f} -> "
         f"{r['rss_after'] / 1024:.1f} MiB", "", None),
        ("memory per entry", f"{r['per_entry']:.0f} B", "", None),
        ("read /index (all entries)", f"{r['index'] * ms:.1f} ms", "", None),
        ("core only: Registry.find+text", f"{r['core_find'] * ms:.2f} ms", "", None),
        ("core only: Registry.index", f"{r['core_index'] * ms:.2f} ms", "", None),
    ]
    for name in ("geryon -h", "python -c pass"):
        mean, median, stddev = s[name]
        goal = "< 150 ms" if name == "geryon -h" else ""
        rows.append((f"start-up `{name}` (mean ± sd)", f"{mean * ms:.1f} ± {stddev * ms:.1f} ms",
                     goal, mean < 0.150 if goal else None))
    width = max(len(row[0]) for row in rows)
    print(f"{'measure':<{width}}  {'result':>22}  {'goal':<9}  met")
    for name, value, goal, met in rows:
        mark = "" if met is None else ("yes" if met else "NO")
        print(f"{name:<{width}}  {value:>22}  {goal:<9}  {mark}")
    print(f"(start-up measured with {s['tool']})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=ENTRIES)
    args = parser.parse_args()
    os.chdir(ROOT)
    scratch = Path(tempfile.mkdtemp(prefix="geryon-bench-registry-"))
    try:
        home = support.make_home(scratch / "home")
        registry = support.start_registry(home)
        results = asyncio.run(asyncio.wait_for(fill_and_query(home, registry, args.entries),
                                               TIME_LIMIT))
        registry.stop()
        report(results, startup(home))
    finally:
        support.Process.kill_all()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
