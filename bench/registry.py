"""Registry benchmark (issues 2 and 6): find latency, registration rate and memory per
entry with 10,000 and with 100,000 live entries, and start-up time of `geryon -h`.

For each size a fresh registry process on loopback (tests/support.start_registry) is
filled by one client connection that keeps every `new` file open, so all entries stay live
while we measure (its home's config raises sftp_max_handles to let one session hold them):

  registrations  first SEQUENTIAL one at a time (open `new`, write, keep it open), then the
                 rest pipelined: asyncio.gather over the same connection and SFTP session,
                 at most WINDOW registrations in flight
  find           50 finds on the empty registry first (the protocol's floor), then
                 QUERIES filters `group gN` (each matches ENTRIES/GROUPS entries), one after
                 another, each Client.write('/find', filter, read_back=True) timed alone
  memory         VmRSS of the registry process before the first and after the last
                 registration, divided by the entries
  core only      the same registrations, finds and index with no I/O, timed in a process of
                 their own before the registry starts, so nothing runs on the client's event
                 loop while connections are open (keepalives must be answered)
  start-up       `geryon -h` against `python -c pass` (the same interpreter), with hyperfine
                 if it is installed, else a loop of STARTS runs of each

Run from the repository root:  .venv/bin/python bench/registry.py [--entries N ...]
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import support  # noqa: E402

ENTRIES = [10_000, 100_000]
SEQUENTIAL = 1_000
WINDOW = 256
GROUPS = 2_000  # filter `group gN` matches entries / GROUPS: 5 of 10,000, 50 of 100,000
QUERIES = 200
STARTS = 20
INDEX_READS = 20
TIME_LIMIT = 300  # seconds for one size's registry part


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
        for _ in range(INDEX_READS):
            await client.read("/index")
        index_seconds = (time.perf_counter() - start) / INDEX_READS

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
        "close_rate": entries / close_seconds,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "per_entry": (rss_after - rss_before) * 1024 / entries,
    }


def core_only(entries: int) -> dict:
    """The same registrations, finds and index with no I/O: the registry's own cost.  Run in
    a process of its own before any connection is open, so no keepalive waits behind it."""
    from geryon.registry.core import Limits, Registry
    before = rss_kib(os.getpid())
    core = Registry(limits=Limits.from_config())
    start = time.perf_counter()
    for i in range(entries):
        core.register(registration(i).encode(), "admin-1")
    register_seconds = time.perf_counter() - start
    memory = (rss_kib(os.getpid()) - before) * 1024
    latencies = []
    for q in range(QUERIES):
        start = time.perf_counter()
        core.text(core.find(f"group g{(q * 7919) % GROUPS}".encode()))
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(INDEX_READS):
        core.index()
    index_seconds = (time.perf_counter() - start) / INDEX_READS
    return {"core_find": statistics.median(latencies), "core_find_p95": percentile(latencies, 95),
            "core_index": index_seconds, "core_rate": entries / register_seconds,
            "core_per_entry": memory / entries}


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


def report(results: list[dict], s: dict) -> None:
    ms = 1000
    rows = [
        ("find median, `group gN`", lambda r: f"{r['find_median'] * ms:.1f} ms", "< 10 ms",
         lambda r: r["find_median"] < 0.010),
        ("find p95", lambda r: f"{r['find_p95'] * ms:.1f} ms", "", None),
        ("find min", lambda r: f"{r['find_min'] * ms:.1f} ms", "", None),
        ("entries each find matches", lambda r: f"{r['matches']}", "", None),
        ("find median, empty registry (protocol floor)",
         lambda r: f"{r['find_empty'] * ms:.1f} ms", "", None),
        (f"registrations/s, pipelined (window {WINDOW})", lambda r: f"{r['pipe_rate']:.0f}/s",
         ">= 1000/s", lambda r: r["pipe_rate"] >= 1000),
        ("registrations/s, one at a time", lambda r: f"{r['seq_rate']:.0f}/s", "", None),
        ("entries removed/s when their files close", lambda r: f"{r['close_rate']:.0f}/s", "",
         None),
        ("registry RSS empty -> full", lambda r: f"{r['rss_before'] / 1024:.1f} -> "
         f"{r['rss_after'] / 1024:.1f} MiB", "", None),
        ("memory per entry (registry RSS)", lambda r: f"{r['per_entry']:.0f} B", "", None),
        ("read /index (all entries)", lambda r: f"{r['index'] * ms:.1f} ms", "", None),
        ("core only: find+text median", lambda r: f"{r['core_find'] * ms:.3f} ms", "", None),
        ("core only: find+text p95", lambda r: f"{r['core_find_p95'] * ms:.3f} ms", "", None),
        ("core only: index", lambda r: f"{r['core_index'] * ms:.1f} ms", "", None),
        ("core only: registrations/s", lambda r: f"{r['core_rate']:.0f}/s", "", None),
        ("core only: memory per entry (RSS)", lambda r: f"{r['core_per_entry']:.0f} B", "",
         None),
    ]
    table = [["measure", *(f"{r['entries']:,} entries" for r in results), "goal", "met"]]
    for name, value, goal, met in rows:
        marks = "" if met is None else " ".join("yes" if met(r) else "NO" for r in results)
        table.append([name, *(value(r) for r in results), goal, marks])
    for name in ("geryon -h", "python -c pass"):
        mean, median, stddev = s[name]
        goal = "< 150 ms" if name == "geryon -h" else ""
        cell = f"{mean * ms:.1f} ± {stddev * ms:.1f} ms"
        table.append([f"start-up `{name}` (mean ± sd)", cell, *([""] * (len(results) - 1)),
                      goal, ("yes" if mean < 0.150 else "NO") if goal else ""])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"(start-up measured with {s['tool']})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="+", default=ENTRIES)
    args = parser.parse_args()
    os.chdir(ROOT)
    scratch = Path(tempfile.mkdtemp(prefix="geryon-bench-registry-"))
    try:
        home = support.make_home(scratch / "home")
        # one session holds every `new` file open, far past the default handle limit
        (home / "config").write_text(f'sftp_max_handles = "{max(args.entries) + 1000}"\n')
        results = []
        for entries in args.entries:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
                core = pool.submit(core_only, entries).result()  # before any connection
            registry = support.start_registry(home)
            try:
                results.append({**asyncio.run(asyncio.wait_for(
                    fill_and_query(home, registry, entries), TIME_LIMIT)), **core})
            finally:
                registry.stop()
        report(results, startup(home))
    finally:
        support.Process.kill_all()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
