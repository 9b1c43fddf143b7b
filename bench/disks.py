"""Chunk disk benchmark (issue 3): load and export throughput of a real-text corpus into and
out of disks, beside `tar c | zstd -1`, `cp -r` and `zstd -dc | tar x` of the same data in
the same run.

The corpus is real text found on this machine, taken tree by tree, each tree getting an
equal share of what is still wanted: the licences in /usr/share/common-licenses, the Python
standard library's .py files, the C headers in /usr/include, the manual pages in
/usr/share/man (decompressed roff source, every language) and the documentation in
/usr/share/doc (gzipped files decompressed).  Files holding a NUL byte or not UTF-8 are
skipped.  The text is cut at line boundaries into mail-sized files (log-normal sizes, median
5 KB, between 300 B and 256 KB), 1,000 to a folder.  Compressed file by file at zstd -3 it
shrinks ~3.4:1, so a 64 MiB disk holds ~220 MB of it: the default 450 MB fills three disks.

The cluster: a registry and three nodes (`--new-chunks 3 --chunk-size 64M`), real processes
on loopback, in a temporary GERYON_HOME.  Each run loads the corpus as a new application
(`geryon load --app benchR CORPUS`), then exports every disk it made
(`geryon get dN.benchR OUT`, one after another), and checks that OUT is the corpus; then
times the other tools on the same corpus.  Throughput is corpus bytes (file contents, 10^6
bytes to the MB) over wall time, start-up of each command included.

Everything (corpus, chunks, outputs, TMPDIR) lives under --dir, by default tmpfs
(/dev/shm), because on this VM's ext4 creating a file costs ~0.8 ms of kernel time, which
swamps every tool that writes the corpus out; `--dir /tmp` measures that case.  Nothing
drops the page cache, so every run reads a warm corpus; the first run also warms the
nodes' and tools' code.  Report the second run (and show both).

Run from the repository root:  .venv/bin/python bench/disks.py [--megabytes N] [--runs N]
[--dir DIR]
"""

import argparse
import gzip
import math
import os
import random
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import support  # noqa: E402

MEGABYTES = 450  # text zstd-compressed file by file is ~3.4:1, so about 3 disks a run
RUNS = 2
NODES = 3
CHUNKS_PER_NODE = 3
CHUNK_SIZE = "64M"
PER_FOLDER = 1000
COMMAND_TIMEOUT = 120  # seconds for any one timed command


def text_trees():
    """(label, paths) for each tree of text files on this machine, in the order taken."""
    def walk(top, keep=lambda name: True, skip=()):
        for root, dirs, files in os.walk(top):
            dirs.sort()
            dirs[:] = [d for d in dirs if d not in skip]
            for name in sorted(files):
                path = Path(root, name)
                if keep(name) and path.is_file() and not path.is_symlink():
                    yield path

    stdlib = sysconfig.get_paths()["stdlib"]
    return [("/usr/share/common-licenses", walk("/usr/share/common-licenses")),
            (f"{stdlib} *.py", walk(stdlib, lambda n: n.endswith(".py"),
                                    ("site-packages", "__pycache__"))),
            ("/usr/include", walk("/usr/include")),
            ("/usr/share/man", walk("/usr/share/man")),
            ("/usr/share/doc", walk("/usr/share/doc"))]


def read_text(path: Path) -> bytes | None:
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        data.decode("utf-8")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError):
        return None
    return None if b"\0" in data else data


def make_corpus(target: Path, megabytes: int, seed: int = 1) -> tuple[int, int, dict]:
    """Write the corpus; return (files, bytes, bytes taken from each source tree)."""
    rng = random.Random(seed)
    want = megabytes * 10**6
    taken: dict[str, int] = {}
    pending = b""
    files = written = 0

    def next_size():
        return min(256_000, max(300, int(rng.lognormvariate(math.log(5000), 0.9))))

    def emit(piece: bytes):
        nonlocal files, written
        folder = target / f"box{files // PER_FOLDER:03d}"
        if files % PER_FOLDER == 0:
            folder.mkdir(parents=True)
        (folder / f"{files:06d}").write_bytes(piece)
        files += 1
        written += len(piece)

    trees = text_trees()
    size = next_size()
    for number, (label, paths) in enumerate(trees):
        # each tree gets an equal share of what is still wanted, so no one tree is all of it
        budget = (want - written - len(pending)) / (len(trees) - number)
        taken[label] = 0
        for path in paths:
            if taken[label] >= budget:
                break
            data = read_text(path)
            if not data:
                continue
            taken[label] += len(data)
            pending += data
            while len(pending) >= size:
                cut = pending.rfind(b"\n", 0, size) + 1 or size
                emit(pending[:cut])
                pending = pending[cut:]
                size = next_size()
    if pending:
        emit(pending)
    return files, written, taken


def timed(command, *, env=None, shell=False, cwd=None) -> float:
    """Wall time of a command that must succeed."""
    start = time.perf_counter()
    result = subprocess.run(command, env=env, shell=shell, cwd=cwd, capture_output=True,
                            text=True, timeout=COMMAND_TIMEOUT)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed ({result.returncode}):\n{result.stdout}\n"
                           f"{result.stderr}")
    return seconds


def q(path) -> str:
    return shlex.quote(str(path))


def same_tree(a: Path, b: Path) -> None:
    result = subprocess.run(["diff", "-rq", str(a), str(b)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"export differs from the corpus:\n{result.stdout[:2000]}")


def run_once(run: int, corpus: Path, scratch: Path, env: dict) -> dict:
    """One run of every measurement; returns seconds per measure and the disks made."""
    work = scratch / f"run{run}"
    work.mkdir()
    app = f"bench{run}"
    parent, name = str(corpus.parent), corpus.name
    seconds = {}

    start = time.perf_counter()
    result = subprocess.run([support.GERYON, "load", "--app", app, str(corpus)], env=env,
                            capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    seconds["geryon load"] = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"geryon load failed:\n{result.stdout}\n{result.stderr}")
    disks = [line.split()[0] for line in result.stdout.splitlines()]
    if not disks:
        raise RuntimeError(f"geryon load made no disks:\n{result.stdout}\n{result.stderr}")

    out = work / "export"
    start = time.perf_counter()
    result = subprocess.run([support.GERYON, "get", *disks, str(out)], env=env,
                            capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"geryon get {disks} failed:\n{result.stdout}\n{result.stderr}")
    seconds["geryon get (every disk)"] = time.perf_counter() - start
    same_tree(corpus, out)
    shutil.rmtree(out)

    archive = work / "x.tar.zst"
    seconds["tar c | zstd -1"] = timed(
        f"tar -C {q(parent)} -c {q(name)} | zstd -1 -q -f -o {q(archive)}", shell=True)
    seconds["cp -r"] = timed(["cp", "-r", str(corpus), str(work / "copy")])
    shutil.rmtree(work / "copy")
    (work / "untar").mkdir()
    seconds["zstd -dc | tar x"] = timed(
        f"zstd -dc -q {q(archive)} | tar -C {q(work / 'untar')} -x", shell=True)
    same_tree(corpus, work / "untar" / name)
    return {"seconds": seconds, "disks": disks, "archive": archive.stat().st_size,
            "work": work}


def filesystem(path: Path) -> str:
    result = subprocess.run(["df", "--output=fstype", str(path)], capture_output=True,
                            text=True)
    return result.stdout.split()[-1] if result.returncode == 0 else "?"


def start_cluster(scratch: Path) -> tuple[Path, dict]:
    """A registry and NODES nodes with empty chunks; returns the home and the env to use."""
    home = support.make_home(scratch / "home")
    registry = support.start_registry(home)
    for i in range(NODES):
        support.start_node(home, registry.address, scratch / f"chunks{i}", f"node{i}",
                           CHUNKS_PER_NODE, CHUNK_SIZE)
    return home, support.env_for(home, GERYON_REGISTRY=registry.address,
                                 GERYON_NDB=scratch / "cluster.ndb")


def report(runs: list[dict], files: int, size: int) -> None:
    mb = size / 1e6
    print(f"\n{'run':<4} {'measure':<24} {'seconds':>8} {'MB/s':>7}  {'vs tar|zstd':>11}")
    for number, run in enumerate(runs, 1):
        s = run["seconds"]
        pairs = [("geryon load", "tar c | zstd -1"), ("tar c | zstd -1", None), ("cp -r", None),
                 ("geryon get (every disk)", "zstd -dc | tar x"), ("zstd -dc | tar x", None)]
        for measure, baseline in pairs:
            ratio = f"{s[baseline] / s[measure]:.2f}x" if baseline else ""
            print(f"{number:<4} {measure:<24} {s[measure]:8.2f} {mb / s[measure]:7.1f}  "
                  f"{ratio:>11}")
        print(f"{number:<4} disks: {' '.join(run['disks'])}; "
              f"tar.zst {run['archive'] / 1e6:.1f} MB")
    last = runs[-1]["seconds"]
    load = last["tar c | zstd -1"] / last["geryon load"]
    export = last["zstd -dc | tar x"] / last["geryon get (every disk)"]
    print(f"\ngoal (run {len(runs)}): load at least half of tar|zstd -1: {load:.2f}x -> "
          f"{'met' if load >= 0.5 else 'NOT met'}; export at least half of zstd -dc|tar x: "
          f"{export:.2f}x -> {'met' if export >= 0.5 else 'NOT met'}")


def default_dir() -> str:
    """tmpfs if it has room: on this VM's ext4, creating a file costs ~0.8 ms of kernel
    time, which would swamp every tool that writes the corpus's files out."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 4 * 2**30:
        return str(shm)
    return tempfile.gettempdir()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=MEGABYTES)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--dir", default=default_dir(),
                        help="where the corpus, chunks and outputs go (default: /dev/shm)")
    args = parser.parse_args()
    for tool in ("tar", "zstd", "cp", "diff"):
        if not shutil.which(tool):
            sys.exit(f"bench/disks.py needs {tool}: apt-get install -y {tool}")
    scratch = Path(tempfile.mkdtemp(prefix="geryon-bench-disks-", dir=args.dir))
    (scratch / "tmp").mkdir()
    os.environ["TMPDIR"] = str(scratch / "tmp")  # geryon load's scratch images go here too
    print(f"in {scratch} ({filesystem(scratch)})")
    try:
        start = time.perf_counter()
        corpus = scratch / "corpus"
        files, size, taken = make_corpus(corpus, args.megabytes)
        print(f"corpus: {files} files, {size / 1e6:.1f} MB, made in "
              f"{time.perf_counter() - start:.1f} s, from:")
        for label, n in taken.items():
            print(f"  {n / 1e6:6.1f} MB  {label}")
        home, env = start_cluster(scratch)
        runs = []
        for number in range(1, args.runs + 1):
            runs.append(run_once(number, corpus, scratch, env))
            shutil.rmtree(runs[-1]["work"])
        print(subprocess.run([support.GERYON, "disks"], env=env, capture_output=True,
                             text=True, timeout=60).stdout, end="")
        report(runs, files, size)
    finally:
        support.Process.kill_all()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
