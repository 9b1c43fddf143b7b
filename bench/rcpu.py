"""rcpu benchmark (issue 7), side by side in one run:

1. start-up: `rcpu '{true}'` end to end (the command's own start included) beside OpenSSH
   `ssh` to a loopback sshd running `true` (installed and started here on a free port, with
   a throwaway host key and the user's own key; needs root for apt-get and sshd);
2. a full 64 MiB disk of real mail-sized text (about 220 MB, bench/disks.py's corpus)
   presented to a block the first time (`rcpu -c B '{true}' d0.benchN` on a cpu whose node
   does not hold the disk: fetched, checked and unpacked into the cache), beside
   `zstd -dc | tar x` of the same files into tmpfs; and the same block again, from the cache;
3. streaming: `rcpu '{cat /n/d0.benchN/*/*}' d0.benchN > /dev/null`, the disk cached.

Each figure is the median of --runs runs (the fill is measured once per fresh disk, on a
new application each run).  Throughput is file content bytes (10^6 to the MB) over wall
time.  Run from the repository root:  .venv/bin/python bench/rcpu.py [--runs N]
"""

import argparse
import os
import shutil
import socket
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
from disks import make_corpus  # noqa: E402

RCPU = str(support.BIN / "rcpu")


def timed(argv, env=None, shell=False) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, shell=shell, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=300)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def start_sshd(scratch: Path):
    """A loopback sshd accepting a throwaway key; returns (process, ssh argv prefix)."""
    if not shutil.which("sshd") and not Path("/usr/sbin/sshd").exists():
        subprocess.run(["apt-get", "install", "-y", "-qq", "openssh-server"], check=True,
                       capture_output=True)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    Path("/run/sshd").mkdir(exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    host_key, user_key = scratch / "host_key", scratch / "user_key"
    for key in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
    (scratch / "authorized").write_text((scratch / "user_key.pub").read_text())
    os.chmod(scratch, 0o755)
    port = free_port()
    config = scratch / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
                      f"AuthorizedKeysFile {scratch / 'authorized'}\nStrictModes no\n"
                      "PasswordAuthentication no\nUsePAM no\nPidFile none\n")
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)],
                            stderr=open(scratch / "sshd.log", "w"))
    support.wait_for(lambda: listening(port) or proc.poll() is not None, 10,
                     what="sshd to listen")
    if proc.poll() is not None:
        raise SystemExit(f"sshd exited with status {proc.returncode}; run it by hand: "
                         f"{sshd} -D -e -f {config}")
    ssh = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-i", str(user_key),
           "-p", str(port), f"{os.environ.get('USER', 'root')}@127.0.0.1"]
    return proc, ssh


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--megabytes", type=int, default=210)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-rcpu-", dir="/dev/shm"))
    sshd = None
    try:
        home = support.make_home(scratch / "home")
        registry = support.start_registry(home)
        for i in range(2):
            support.start_node(home, registry.address, scratch / f"chunks{i}", f"node{i}",
                               args.runs + 1, "64M",
                               extra=support.cpu_options(scratch / f"state{i}", "64M"))
        env = support.env_for(home, GERYON_REGISTRY=registry.address,
                              GERYON_NDB=scratch / "cluster.ndb")
        subprocess.run([support.GERYON, "refresh"], env=env, check=True, capture_output=True)
        sshd, ssh = start_sshd(scratch / "sshd")

        for _ in range(3):  # warm both
            timed([RCPU, "{true}"], env)
            timed([*ssh, "true"])
        starts = [timed([RCPU, "{true}"], env) for _ in range(args.runs * 4)]
        sshs = [timed([*ssh, "true"]) for _ in range(args.runs * 4)]

        corpus = scratch / "corpus"
        files, size, _ = make_corpus(corpus, args.megabytes)
        tarball = scratch / "corpus.tar.zst"
        subprocess.run(f"tar -C {corpus} -cf - . | zstd -q -1 -o {tarball}", shell=True,
                       check=True)
        untars, fills, cached, streams = [], [], [], []
        for run in range(args.runs):
            out = scratch / f"untar{run}"
            out.mkdir()
            untars.append(timed(f"zstd -dc {tarball} | tar -C {out} -xf -", shell=True))
            shutil.rmtree(out)
            app = f"bench{run}"
            loaded = subprocess.run([support.GERYON, "load", "--app", app, str(corpus)],
                                    env=env, check=True, capture_output=True, text=True)
            first = loaded.stdout.split()
            disk, holder = first[0], first[1]
            other = "node1" if holder == "node0" else "node0"
            on_disk = int(first[2])
            fills.append((timed([RCPU, "-c", other, "{true}", disk], env), disk))
            cached.append(timed([RCPU, "-c", other, "{true}", disk], env))
            streams.append(timed(f"{RCPU} -c {other} '{{cat /n/{disk}/*/*}}' {disk} "
                                 "> /dev/null", env=env, shell=True))
        disk_bytes = disk_size(env, fills[0][1])
        print(f"rcpu '{{true}}': median {statistics.median(starts) * 1000:.0f} ms "
              f"(p90 {sorted(starts)[int(len(starts) * 0.9)] * 1000:.0f}); OpenSSH ssh true: "
              f"median {statistics.median(sshs) * 1000:.0f} ms")
        fill = statistics.median(t for t, _ in fills)
        print(f"first block on a 64 MiB disk ({disk_bytes / 1e6:.0f} MB of files, "
              f"{on_disk} files): median {fill:.2f} s = {disk_bytes / 1e6 / fill:.0f} MB/s; "
              f"zstd -dc | tar x of the whole corpus ({size / 1e6:.0f} MB, {files} files): "
              f"{statistics.median(untars):.2f} s = "
              f"{size / 1e6 / statistics.median(untars):.0f} MB/s")
        print(f"the same block again (cached): median {statistics.median(cached) * 1000:.0f} ms")
        stream = statistics.median(streams)
        print(f"rcpu cat of the disk's files to the caller: median {stream:.2f} s = "
              f"{disk_bytes / 1e6 / stream:.0f} MB/s")
    finally:
        support.Process.kill_all()
        if sshd is not None:
            sshd.terminate()
        shutil.rmtree(scratch, ignore_errors=True)


def disk_size(env, disk) -> int:
    """Bytes of file content on a disk (a block sums them)."""
    out = subprocess.run([RCPU, f"{{du -sb --apparent-size /n/{disk} | cut -f1}}", disk],
                         env=env, check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


if __name__ == "__main__":
    main()
