"""Replica benchmark (issue 8): how fast a replica follows its master, and what
`geryon load --replicas 1` costs over `--replicas 0`.

1. Lag: a registry and two nodes on loopback; node1's chunk0 follows node0's chunk0.  A
   writer stores files one after another on the master over SFTP (mail-sized text, 2-40
   KB, one SFTP write and close each, as a client writing a disk would); a watcher asks
   the replica's `image-id` every 2 ms.  A write's lag is from its close returning to the
   first answer of the replica holding it.  Median and worst over --writes writes.
2. Follow throughput: a 64 MiB chunk filled with the corpus's text (made here with the
   chunk library), served by node0; node1 serves (a) an empty chunk, which `replicate
   node0!chunk0` makes fetch the whole log (image-get, checked whole), and (b) the first
   1 MiB of the same log, which copies the rest with image-tail, record by record after its
   prefix is checked.  The time `replicate` takes to answer `in sync` (it dials the
   registry and the master first); MB/s of log (10^6 bytes).
3. Load: the corpus of bench/disks.py (--megabytes, real text from this machine; 200 MB
   fill one disk) loaded on three nodes (4 chunks of 64 MiB each: enough for every run)
   with --replicas 0 and --replicas 1, alternately, --runs times each, each run a new
   application; the ratio of the best wall times.

Run from the repository root:  .venv/bin/python bench/replicas.py [--megabytes N]
[--runs N] [--writes N] [--dir DIR]
"""

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import support  # noqa: E402
from disks import default_dir, make_corpus  # noqa: E402

from geryon.chunkfs.chunk import Chunk  # noqa: E402
from geryon.ns.ca import Identity  # noqa: E402
from geryon.ns.client import Client  # noqa: E402

CAPACITY = 64 << 20


async def image_id(client) -> tuple[str, int]:
    done = await client.run("image-id")
    log_id, used = done.stdout.split()
    return log_id.decode(), int(used)


def node_addr(home, env, host, chunk="chunk0") -> str:
    return support.geryon(home, "regquery", "-n", "resource", "kfs", "host", host, "id",
                          chunk, check=True, **{k: v for k, v in env.items()
                                                if k.startswith("GERYON_")
                                                and k != "GERYON_HOME"}).stdout.strip()


def mark(chunks: Path, master: str) -> None:
    (chunks / ".chunk0.replica").write_text(f"replicaof {master}\n")


async def measure_lag(master_addr, replica_addr, home, writes, texts):
    identity = Identity(home)
    async with await Client.connect(master_addr, identity) as master, \
            await Client.connect(replica_addr, identity) as replica:
        seen = []  # (time, replica's end)
        stop = asyncio.Event()

        async def watch():
            while not stop.is_set():
                seen.append((time.perf_counter(), (await image_id(replica))[1]))
                await asyncio.sleep(0.002)

        watcher = asyncio.ensure_future(watch())
        done = []
        for i in range(writes):
            await master.write(f"/w{i}", texts[i % len(texts)])
            at = time.perf_counter()
            done.append((at, (await image_id(master))[1]))
            await asyncio.sleep(0.02)
        deadline = time.perf_counter() + 10
        while seen[-1][1] < done[-1][1] and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        stop.set()
        await watcher
    lags = []
    for at, end in done:
        reached = next((t for t, e in seen if e >= end and t >= at - 0.5), None)
        if reached is not None:
            lags.append(max(0.0, reached - at))
    return lags


def fill(path: Path, texts) -> int:
    with Chunk.create(path, CAPACITY, sync=False, level=1) as chunk:
        i = 0
        while chunk.free > 300_000:
            chunk.write(f"box{i // 1000:03d}/{i:06d}", texts[i % len(texts)])
            i += 1
        return chunk.used


async def wait_equal(master_addr, replica_addr, home, timeout=120.0) -> float:
    identity = Identity(home)
    start = time.perf_counter()
    async with await Client.connect(master_addr, identity) as master:
        want = await image_id(master)
    while time.perf_counter() - start < timeout:
        try:
            async with await Client.connect(replica_addr, identity) as replica:
                while time.perf_counter() - start < timeout:
                    if await image_id(replica) == want:
                        return time.perf_counter() - start
                    await asyncio.sleep(0.01)
        except Exception:  # the replica's node is still coming up
            await asyncio.sleep(0.05)
    raise RuntimeError("the replica never caught up")


async def replicate(addr, home) -> float:
    """Seconds a `replicate node0!chunk0` takes to answer in sync (node start-up apart)."""
    async with await Client.connect(addr, Identity(home)) as chunk:
        start = time.perf_counter()
        done = await chunk.run("replicate node0!chunk0 120")
        seconds = time.perf_counter() - start
    if not done.ok:
        raise RuntimeError(f"replicate failed: {done.stderr.decode()}")
    return seconds


def follow_bench(scratch: Path, texts, writes: int) -> dict:
    home = support.make_home(scratch / "home")
    registry = support.start_registry(home)
    env = support.env_for(home, GERYON_REGISTRY=registry.address)
    out = {}
    try:
        # 1. lag: an empty master and a replica of it
        (scratch / "m").mkdir()
        (scratch / "r").mkdir()
        Chunk.create(scratch / "m" / "chunk0", CAPACITY).close()
        Chunk.create(scratch / "r" / "chunk0", CAPACITY).close()
        mark(scratch / "r", "node0!chunk0")
        m = support.start_node(home, registry.address, scratch / "m", "node0")
        r = support.start_node(home, registry.address, scratch / "r", "node1")
        maddr, raddr = node_addr(home, env, "node0"), node_addr(home, env, "node1")
        asyncio.run(wait_equal(maddr, raddr, home))
        out["lags"] = asyncio.run(measure_lag(maddr, raddr, home, writes, texts))
        r.stop()
        m.stop()
        # 2. throughput: a full master; a replica that has nothing, then one with 1 MiB
        for name in ("m", "r"):
            shutil.rmtree(scratch / name)
            (scratch / name).mkdir()
        used = fill(scratch / "m" / "chunk0", texts)
        m = support.start_node(home, registry.address, scratch / "m", "node0")
        maddr = node_addr(home, env, "node0")
        for case, prefix in (("whole (image-get)", None), ("tail (image-tail)", 1 << 20)):
            target = scratch / "r" / "chunk0"
            target.unlink(missing_ok=True)
            if prefix is None:
                Chunk.create(target, CAPACITY).close()
            else:
                with Chunk.open(scratch / "m" / "chunk0", readonly=True) as master:
                    cut = max(r.end for r in _records(master) if r.end <= prefix)
                target.write_bytes((scratch / "m" / "chunk0").read_bytes()[:cut])
            (scratch / "r" / ".chunk0.replica").unlink(missing_ok=True)
            r = support.start_node(home, registry.address, scratch / "r", "node1")
            raddr = node_addr(home, env, "node1")
            seconds = asyncio.run(replicate(raddr, home))
            copied = used - (0 if prefix is None else cut)
            out[case] = (copied, seconds)
            r.stop()
        m.stop()
    finally:
        support.Process.kill_all()
    return out


def _records(chunk):
    from geryon.chunkfs.record import scan
    return scan(open(chunk.path, "rb").read()[:chunk.used]).records


def load_bench(scratch: Path, corpus: Path, runs: int) -> dict:
    home = support.make_home(scratch / "lhome")
    registry = support.start_registry(home)
    for i in range(3):
        support.start_node(home, registry.address, scratch / f"l{i}", f"node{i}", 4, "64M")
    env = support.env_for(home, GERYON_REGISTRY=registry.address,
                          GERYON_NDB=scratch / "cluster.ndb")
    times = {0: [], 1: []}
    try:
        for run in range(runs):
            for replicas in (0, 1):
                start = time.perf_counter()
                result = subprocess.run([support.GERYON, "load", "--app", f"b{run}r{replicas}",
                                         "--replicas", str(replicas), str(corpus)], env=env,
                                        capture_output=True, text=True, timeout=600)
                times[replicas].append(time.perf_counter() - start)
                if result.returncode != 0:
                    raise RuntimeError(f"load failed: {result.stderr}")
                print(f"  load --replicas {replicas} (run {run + 1}): "
                      f"{times[replicas][-1]:.2f} s: {result.stdout.strip()}")
    finally:
        support.Process.kill_all()
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--dir", default=default_dir())
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="geryon-bench-replicas-", dir=args.dir))
    (scratch / "tmp").mkdir()
    os.environ["TMPDIR"] = str(scratch / "tmp")
    print(f"in {scratch}")
    try:
        corpus = scratch / "corpus"
        files, size, _ = make_corpus(corpus, args.megabytes)
        print(f"corpus: {files} files, {size / 1e6:.1f} MB")
        rng = random.Random(5)
        paths = sorted(p for p in corpus.rglob("*") if p.is_file())
        texts = [p.read_bytes() for p in rng.sample(paths, min(2000, len(paths)))]
        texts = [t for t in texts if 2000 <= len(t) <= 40_000] or texts
        follow = follow_bench(scratch, texts, args.writes)
        lags = sorted(follow["lags"])
        print(f"lag over {len(lags)} writes: median {statistics.median(lags) * 1000:.1f} ms, "
              f"90th {lags[int(len(lags) * 0.9)] * 1000:.1f} ms, worst {lags[-1] * 1000:.1f} ms")
        for case in ("whole (image-get)", "tail (image-tail)"):
            copied, seconds = follow[case]
            print(f"follow {case}: {copied / 1e6:.1f} MB of log in {seconds:.2f} s: "
                  f"{copied / 1e6 / seconds:.1f} MB/s")
        times = load_bench(scratch, corpus, args.runs)
        for replicas in (0, 1):
            print(f"load --replicas {replicas}: " +
                  ", ".join(f"{t:.2f} s" for t in times[replicas]) +
                  f" ({size / 1e6 / min(times[replicas]):.1f} MB/s best)")
        ratio = min(times[1]) / min(times[0])
        print(f"goal: --replicas 1 under 1.3x --replicas 0: {ratio:.2f}x -> "
              f"{'met' if ratio < 1.3 else 'NOT met'}")
    finally:
        support.Process.kill_all()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
