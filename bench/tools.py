"""idx, agg, mrsort and intermediate against tr, awk and sort doing the same jobs, and their
start-up times.

Run from the repository root: `.venv/bin/python bench/tools.py` (about a minute).  Inputs are
made in a temporary directory and removed after: ~100 MB of generated text (a Zipf-like
vocabulary with capitals, punctuation, tabs and a few non-ASCII words) and ~30 MB of real
text (vim's manual and the licences in /usr/share/common-licenses, repeated).  Every
command reads a file on stdin and writes to /dev/null (intermediate and the awk partitioner
write R=5 files in the temporary directory); MB/s is input bytes over wall time, best
of two runs (one for the partitioners, the 65599 ones over the first 20 MB), and CPU is the
user+system time of every process of the pipeline.  Outputs are checked equal to the shell
tools' before anything is timed (idx -c's and the awk hash count's as sorted lines).
"""

import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BIN = Path(sys.executable).parent
R = 5
TR_IDX = "tr 'A-Z' 'a-z' | tr -cs 'a-z0-9_' '\\n' | awk 'NF{print $0\" 1\"}'"
# Keys compared as strings ($1"") or awk would take "0" and "00" for one number.
AWK_AGG = """awk 'NR==1{k=$1} $1"" != k""{print k, s; k=$1; s=0} {s+=$2} END{if(NR)print k, s}'"""
AWK_AGG_HASH = "awk '{s[$1]+=$2} END{for(k in s) print k, s[k]}'"
TR_COUNT = ("tr 'A-Z' 'a-z' | tr -cs 'a-z0-9_' '\\n' | "
            "awk 'NF{c[$0]++} END{for(w in c) print w, c[w]}'")
# The 65599 partitioner in awk: h over the key's bytes, 32 bits (exact in doubles).
AWK_PART = r"""awk -v R=%d -v P=%s 'BEGIN { for (i = 0; i < 256; i++) ord[sprintf("%%c", i)] = i }
NF == 2 { h = 0; n = length($1)
  for (i = 1; i <= n; i++) h = (h * 65599 + ord[substr($1, i, 1)]) %% 4294967296
  print > (P (h %% 2147483648) %% R) }'"""


def generated(path: Path, megabytes: int = 100) -> None:
    rng = random.Random(1)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 10)))
             for _ in range(50_000)]
    vocab = [w.capitalize() if i % 7 == 0 else w for i, w in enumerate(vocab)]
    vocab += ["caf\u00e9", "na\u00efve", "e.g.", "x_y", "2026", "\u4e2d\u6587"]
    words = rng.choices(vocab, [1 / (i + 1) for i in range(len(vocab))], k=1_700_000)
    seps = rng.choices([" "] * 20 + [", ", ". ", "\n", "  ", "\t", "; ", "-"], k=len(words))
    block = "".join(w + s for w, s in zip(words, seps)).encode()
    with path.open("wb") as f:
        for _ in range(megabytes * 1_000_000 // len(block) + 1):
            f.write(block)


def real(path: Path, megabytes: int = 30) -> bool:
    sources = sorted(Path("/usr/share/vim").glob("vim*/doc/*.txt"))
    sources += sorted(Path("/usr/share/common-licenses").glob("*"))
    text = b"".join(p.read_bytes() for p in sources if p.is_file())
    if not text:
        return False
    with path.open("wb") as f:
        for _ in range(megabytes * 1_000_000 // len(text) + 1):
            f.write(text)
    return True


def sorted_pairs(idx_output: Path, path: Path) -> None:
    """What `LC_ALL=C sort` makes of idx's output, built from counts (sort takes minutes)."""
    counts = Counter(idx_output.read_bytes().split(b" 1\n"))
    counts.pop(b"", None)
    with path.open("wb") as f:
        for word in sorted(counts):
            f.write((word + b" 1\n") * counts[word])


def timed(command: str, stdin: Path, cwd: Path, runs: int = 2) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run) of a shell command."""
    best = None
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        with stdin.open("rb") as f:
            subprocess.run(command, shell=True, stdin=f, stdout=subprocess.DEVNULL,
                           cwd=cwd, check=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if best is None or wall < best[0]:
            best = (wall, cpu)
    return best


def same_output(a: str, b: str, stdin: Path, cwd: Path, sort: bool = False) -> None:
    outs = []
    for command in (a, b):
        with stdin.open("rb") as f:
            out = subprocess.run(command, shell=True, stdin=f, capture_output=True,
                                 cwd=cwd, check=True).stdout
        outs.append(sorted(out.splitlines()) if sort else out)
    assert outs[0] == outs[1], f"{a!r} and {b!r} disagree"


def row(name: str, what: str, mb: float, wall: float, cpu: float) -> str:
    return f"| {name} | {what} | {mb / wall:.0f} MB/s | {cpu:.2f} s | {wall:.2f} s |"


def head(path: Path, out: Path, megabytes: int) -> Path:
    with path.open("rb") as f:
        data = f.read(megabytes * 1_000_000)
    out.write_bytes(data[:data.rfind(b"\n") + 1])
    return out


def throughput(work: Path, label: str, text: Path) -> list[str]:
    rows = []
    slug = label.split()[0]
    idx_out = work / f"{slug}.idx"
    subprocess.run(f"{BIN}/idx < {text} > {idx_out}", shell=True, check=True)
    same_output(f"{BIN}/idx", TR_IDX, head(text, work / "small", 5), work)
    mb = text.stat().st_size / 1e6
    rows.append(row("idx", label, mb, *timed(f"{BIN}/idx", text, work)))
    rows.append(row("tr \\| tr \\| awk", label, mb, *timed(TR_IDX, text, work)))
    rows.append(row("tr -cs alone (not the whole job)", label, mb,
                    *timed("tr -cs 'a-z0-9_' '\\n'", text, work)))

    same_output(f"{BIN}/idx -c", TR_COUNT, head(text, work / "small", 5), work, sort=True)
    rows.append(row("idx -c", label, mb, *timed(f"{BIN}/idx -c", text, work)))
    rows.append(row("tr \\| tr \\| awk, hash count", label, mb, *timed(TR_COUNT, text, work)))

    mb = idx_out.stat().st_size / 1e6
    small = head(idx_out, work / "small.idx", 5)
    same_output(f"{BIN}/mrsort", "LC_ALL=C sort", small, work)
    rows.append(row("mrsort", f"{label}, idx output", mb, *timed(f"{BIN}/mrsort", idx_out,
                                                                    work, 1)))
    rows.append(row("LC_ALL=C sort", f"{label}, idx output", mb,
                    *timed("LC_ALL=C sort", idx_out, work, 1)))
    same_output(f"{BIN}/agg -s", f"LC_ALL=C sort | {BIN}/agg", small, work)
    rows.append(row("agg -s", f"{label}, idx output", mb, *timed(f"{BIN}/agg -s", idx_out,
                                                                    work, 1)))
    rows.append(row("LC_ALL=C sort \\| agg", f"{label}, idx output", mb,
                    *timed(f"LC_ALL=C sort | {BIN}/agg", idx_out, work, 1)))
    rows.append(row("awk, hash of keys", f"{label}, idx output", mb,
                    *timed(AWK_AGG_HASH, idx_out, work, 1)))

    pairs = work / f"{slug}.sorted"
    sorted_pairs(idx_out, pairs)
    mb = pairs.stat().st_size / 1e6
    same_output(f"{BIN}/agg", AWK_AGG, pairs, work)
    rows.append(row("agg", f"{label}, sorted idx output", mb, *timed(f"{BIN}/agg", pairs, work)))
    rows.append(row("awk, runs of keys", f"{label}, sorted idx output", mb,
                    *timed(AWK_AGG, pairs, work)))
    rows.append(row("awk, hash of keys", f"{label}, sorted idx output", mb,
                    *timed(AWK_AGG_HASH, pairs, work)))

    mb = idx_out.stat().st_size / 1e6
    rows.append(row("intermediate (xxh3)", f"{label}, idx output", mb,
                    *timed(f"{BIN}/intermediate {R} x", idx_out, work, 1)))
    slice_ = head(idx_out, work / "slice", 20)
    rows.append(row("intermediate --hash 65599 (first 20 MB)", f"{label}, idx output",
                    slice_.stat().st_size / 1e6,
                    *timed(f"{BIN}/intermediate --hash 65599 {R} i", slice_, work, 1)))
    subprocess.run(f"{BIN}/intermediate --hash 65599 {R} i < {slice_}", shell=True, cwd=work,
                   check=True)
    subprocess.run(AWK_PART % (R, "a") + f" < {slice_}", shell=True, cwd=work, check=True)
    for r in range(R):
        assert (work / f"i{r}").read_bytes() == (work / f"a{r}").read_bytes()
    rows.append(row("awk 65599 partitioner (first 20 MB)", f"{label}, idx output",
                    slice_.stat().st_size / 1e6, *timed(AWK_PART % (R, "a"), slice_, work, 1)))
    return rows


def startup(work: Path) -> list[str]:
    commands = {
        "idx": f"{BIN}/idx /dev/null",
        "agg": f"{BIN}/agg /dev/null",
        "mrsort": f"{BIN}/mrsort /dev/null",
        "intermediate": f"{BIN}/intermediate {R} {work}/s",
        "python -c pass (the floor)": f"{sys.executable} -c pass",
        "tr": "tr a b",
        "awk": "awk 1 /dev/null",
    }
    rows = []
    if shutil.which("hyperfine"):
        out = work / "hyperfine.json"
        subprocess.run(["hyperfine", "-N", "--warmup", "3", "--runs", "30", "--style", "none",
                        "--export-json", str(out), *commands.values()],
                       check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        for name, result in zip(commands, json.loads(out.read_text())["results"]):
            rows.append(f"| {name} | {result['mean'] * 1000:.1f} ± "
                        f"{result['stddev'] * 1000:.1f} ms |")
    else:
        for name, command in commands.items():
            times = []
            for _ in range(30):
                start = time.perf_counter()
                subprocess.run(command.split(), stdin=subprocess.DEVNULL, check=True)
                times.append(time.perf_counter() - start)
            rows.append(f"| {name} | {sorted(times)[15] * 1000:.1f} ms (median of 30) |")
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="geryon-bench-tools-") as tmp:
        work = Path(tmp)
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        print("| command | input | speed | CPU | wall |\n|---|---|---|---|---|")
        generated(work / "generated.txt")
        for line in throughput(work, "generated 100 MB", work / "generated.txt"):
            print(line, flush=True)
        if real(work / "real.txt"):
            for line in throughput(work, "real 30 MB", work / "real.txt"):
                print(line, flush=True)
        print("\n| start-up | mean ± sd |\n|---|---|")
        for line in startup(work):
            print(line)
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
