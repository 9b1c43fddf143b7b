"""geryon mapreduce beside the same blocks as one local pipeline and an awk hash count.

    .venv/bin/python bench/mapreduce.py [--megabytes 64] [--runs 1]

Four disks, each --megabytes of real text (bench/disks.py's corpus: licenses, the Python
library, headers, man pages, docs), loaded on a 3-node loopback cluster (every node a cpu,
all on this machine), and the word count `idx` / `agg`:

- geryon mapreduce with `--combiner agg`, without one, with the map `idx -c` (which counts
  its own words: a map that combines in itself), and with the awk count below as the map
  (C tools per word, one per disk, two disks at a time);
- the same blocks as one local pipeline, `idx FILES | LC_ALL=C sort | agg`;
- an awk hash count: `cat FILES | tr -cs A-Za-z0-9_ '\\n' | tr A-Z a-z | awk '{c[$0]++}...'`;
- the peers: a Dask bag word count on 2 worker processes and a PySpark local[2] one, each
  a whole `bench/peers/wordcount.py` run (interpreter and JVM start-up included) in the
  peers' own environment, bench/peers/.venv, which bench/peers/setup makes (run first,
  every time: it does nothing when the environment is ready, and a failure ends the bench).

Each is timed --runs times (the median is shown); the geryon and peer results are checked
equal to the local pipeline's, and geryon's time is shown as a fraction of each peer's (the
goal: at most half).  For geryon, where the time goes is read from the job's events: the
map phase, the reduce phase, and the clean-up; for a peer, from what wordcount.py reports.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

import support  # noqa: E402
from disks import make_corpus  # noqa: E402

PEERS = HERE / "peers"
PEER_PYTHON = PEERS / ".venv" / "bin" / "python"
# engine for bench/peers/wordcount.py, row label
PEER_CASES = [("dask", "Dask bag word count (2 workers)"),
              ("spark", "PySpark local[2] word count")]
BIN = os.path.dirname(support.GERYON)
ENV_PATH = {"PATH": f"{BIN}:{os.environ['PATH']}"}
AWK = ("tr -cs 'A-Za-z0-9_' '\\n' | tr 'A-Z' 'a-z' | "
       "awk 'NF {c[$0]++} END {for (w in c) print w, c[w]}'")


def timed(argv, **kw):
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, **kw)
    if done.returncode != 0:
        raise SystemExit(f"{argv if isinstance(argv, str) else ' '.join(argv)} failed:\n"
                         f"{done.stderr.decode(errors='replace')[-2000:]}")
    return time.perf_counter() - started, done.stdout


def peers_ready():
    """bench/peers/setup, which makes bench/peers/.venv unless it is ready; never skipped."""
    done = subprocess.run([str(PEERS / "setup")], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0 or not PEER_PYTHON.exists():
        raise SystemExit(f"bench/peers/setup failed (exit {done.returncode}), so the peers "
                         f"cannot be timed:\n{done.stdout[-3000:]}")
    print(done.stdout.strip().splitlines()[-1], flush=True)


def peer_run(engine: str, listing: Path, out: Path) -> tuple[float, dict]:
    """One bench/peers/wordcount.py run: its wall time, and where the time went (its own
    `wordcount: WHAT: SECONDS s` lines, and the rest: interpreter start-up and exit)."""
    started = time.perf_counter()
    done = subprocess.run([str(PEER_PYTHON), str(PEERS / "wordcount.py"), engine,
                           str(listing), str(out)], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench/peers/wordcount.py {engine} failed:\n{done.stderr[-3000:]}")
    parts = {}
    for line in done.stderr.splitlines():
        if line.startswith("wordcount: ") and line.endswith(" s"):
            what, _, value = line[len("wordcount: "):-2].rpartition(": ")
            parts[what] = float(value)
    inside = parts.pop("all, in the interpreter", None)
    if inside is not None:
        parts["interpreter start-up and exit (the rest)"] = seconds - inside
    return seconds, parts


def phases(home: Path, job: str) -> dict:
    events = [json.loads(line) for line in (home / "jobs" / job / "events").read_text()
              .splitlines() if line.strip()]
    starts = {(e["task"], e["n"]): e["t"] for e in events if e["ev"] == "start"}
    maps = [(starts[(e["task"], e["n"])], e["t"]) for e in events
            if e["ev"] == "done" and e["task"].startswith("m")]
    reduces = [(starts[(e["task"], e["n"])], e["t"]) for e in events
               if e["ev"] == "done" and e["task"].startswith("r")]
    end = next(e["t"] for e in events if e["ev"] == "end")
    first = min(starts.values())
    return {"map phase": max(t for _, t in maps) - first,
            "map task (median)": statistics.median(t - s for s, t in maps),
            "reduce phase": max(t for _, t in reduces) - min(s for s, _ in reduces),
            "reduce task (median)": statistics.median(t - s for s, t in reduces),
            "between phases": min(s for s, _ in reduces) - max(t for _, t in maps),
            "clean-up and end": end - max(t for _, t in reduces)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=64, help="text on each disk")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    peers_ready()
    scratch = Path(tempfile.mkdtemp(prefix="geryon-bench-mr-"))
    try:
        home = support.make_home(scratch / "admin")
        registry = support.start_registry(home)
        for i in range(3):
            support.start_node(home, registry.address, scratch / f"chunks{i}", f"node{i}", 2,
                               "64M", extra=support.cpu_options(scratch / f"state{i}", "1G"))
        env = support.env_for(home, GERYON_REGISTRY=registry.address,
                              GERYON_NDB=scratch / "cluster.ndb")
        disks, files = [], []
        for k in range(4):
            corpus = scratch / f"text{k}"
            make_corpus(corpus, args.megabytes, seed=k + 1)
            files += sorted(str(p) for p in corpus.rglob("*") if p.is_file())
            loaded = subprocess.run([support.GERYON, "load", "--app", f"t{k}", "--replicas",
                                     "0", str(corpus)], env=env, check=True,
                                    capture_output=True, text=True)
            disks += [line.split()[0] for line in loaded.stdout.splitlines()
                      if line.startswith("d")]
        subprocess.run([support.GERYON, "refresh"], env=env, check=True, capture_output=True)
        size = sum(os.path.getsize(f) for f in files)
        listing = scratch / "files"
        listing.write_text("\n".join(files) + "\n")
        cat = f"xargs -d '\\n' cat < {listing}"
        print(f"{len(disks)} disks ({', '.join(disks)}), {size / 1e6:.0f} MB of text, "
              f"{len(files)} files; {args.runs} run(s) each", flush=True)

        results, profile, outputs = {}, {}, {}
        # An empty job first, twice: the first fetches and unpacks every disk into the
        # cpus' caches (as a cluster's first job on new disks does), the second is the
        # fixed cost of a job on a warm cluster.  The jobs below then find the disks
        # unpacked, as the peers find the files in the page cache.
        for what in ("empty job, cold: disks fetched and unpacked", "empty job, warm"):
            seconds, _ = timed([support.GERYON, "mapreduce", "{true}", "{cat}", *disks],
                               env=env)
            print(f"{what}: {seconds:.2f} s", flush=True)
            profile[f"geryon {what}"] = {"wall": seconds}
        idx = "idx /n/*/box*/*"
        cases = [("geryon mapreduce --combiner agg", ["--combiner", "agg"], idx),
                 ("geryon mapreduce (no combiner)", [], idx),
                 ("geryon mapreduce, map `idx -c` (counts in the map)", [],
                  idx.replace("idx", "idx -c")),
                 ("geryon mapreduce, map `cat | tr | tr | awk` (the awk count per disk)", [],
                  f"cat /n/*/box*/* | {AWK}")]
        for label, extra, map_block in cases:
            times = []
            for _ in range(args.runs):
                seconds, out = timed([support.GERYON, "mapreduce", *extra,
                                      map_block, "agg", *disks], env=env)
                job = out.decode().split()[0]
                times.append(seconds)
                profile[label] = phases(home, job)
            results[label] = times
            outputs[label] = timed([support.GERYON, "jobs", "cat", job], env=env)[1]
            print(f"{label}: {statistics.median(times):.2f} s"
                  + (f" (runs: {', '.join(f'{t:.2f}' for t in times)})" if len(times) > 1
                     else ""), flush=True)
        local_env = {**os.environ, **ENV_PATH}
        # the map block is `idx FILES`: idx reads each file as a whole (a file that ends
        # mid-word ends that word), so the local pipeline gives idx the files too
        for label, pipeline in [("local pipeline: idx FILES | LC_ALL=C sort | agg",
                                 f"xargs -d '\\n' idx < {listing} | LC_ALL=C sort | agg"),
                                ("awk hash count: tr | tr | awk", f"{cat} | {AWK}")]:
            times = []
            for _ in range(args.runs):
                seconds, out = timed(pipeline, shell=True, env=local_env)
                times.append(seconds)
            results[label] = times
            outputs[label] = out
            print(f"{label}: {statistics.median(times):.2f} s"
                  + (f" (runs: {', '.join(f'{t:.2f}' for t in times)})" if len(times) > 1
                     else ""), flush=True)
        for engine, label in PEER_CASES:
            times = []
            out = scratch / f"{engine}.out"
            for _ in range(args.runs):
                seconds, profile[label] = peer_run(engine, listing, out)
                times.append(seconds)
            results[label] = times
            outputs[label] = out.read_bytes()
            print(f"{label}: {statistics.median(times):.2f} s"
                  + (f" (runs: {', '.join(f'{t:.2f}' for t in times)})" if len(times) > 1
                     else ""), flush=True)

        local = sorted(outputs["local pipeline: idx FILES | LC_ALL=C sort | agg"].splitlines())
        awk_count = sorted(outputs["awk hash count: tr | tr | awk"].splitlines())
        for label in [case[0] for case in cases] + [label for _, label in PEER_CASES]:
            got = sorted(outputs[label].splitlines())
            if "awk" in label:  # cat joins a file's last word to the next file's first
                differ = len(set(got) ^ set(awk_count))
                print(f"{label}: {differ} lines differ from the awk count's (words that "
                      "cat joins across the ends of files at the disks' edges)")
                continue
            same = got == local
            print(f"{label}: output {'equals' if same else 'DIFFERS FROM'} the local pipeline's"
                  + ("" if same else f": {sorted(set(got) - set(local))[:5]} / "
                     f"{sorted(set(local) - set(got))[:5]}"))
        base = statistics.median(results["local pipeline: idx FILES | LC_ALL=C sort | agg"])
        awk = statistics.median(results["awk hash count: tr | tr | awk"])
        print("\n| what | median wall | MB/s | vs local pipeline | vs awk |")
        print("|---|---|---|---|---|")
        for label, times in results.items():
            t = statistics.median(times)
            print(f"| {label} | {t:.2f} s | {size / 1e6 / t:.0f} | {t / base:.2f}x | "
                  f"{t / awk:.2f}x |")
        print()
        dask, spark = (statistics.median(results[label]) for _, label in PEER_CASES)
        for label, *_ in cases:
            t = statistics.median(results[label])
            print(f"{label} vs Dask: {t / dask:.2f}, vs Spark: {t / spark:.2f} "
                  f"(of their wall time; the goal is at most 0.50)")
        for label, parts in profile.items():
            print(f"\nwhere the time goes, {label}:")
            for what, seconds in parts.items():
                print(f"  {what}: {seconds:.2f} s")
    finally:
        support.Process.kill_all()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
