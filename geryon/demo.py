"""The embedded default: a whole Geryon cluster on this machine, on loopback only.

Every piece runs as its own process started from this Python, exactly as a person would
start it on separate machines; the demo only wires them together and narrates.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from geryon.errors import GeryonError


def shlex_quote(text: str) -> str:
    import shlex
    return shlex.quote(text)


def bin_path() -> str:
    """PATH with this installation's commands (idx, agg) first."""
    return f"{Path(sys.executable).parent}:{os.environ.get('PATH', os.defpath)}"


class Demo:
    def __init__(self, directory: str = "", echo=print):
        self.echo = echo
        self.own_dir = not directory
        self.dir = Path(directory or tempfile.mkdtemp(prefix="geryon-demo-"))
        self.home = self.dir / "home"
        self.procs: list[subprocess.Popen] = []
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("GERYON_")},
                    "GERYON_HOME": str(self.home)}

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        self.stop(keep_logs=kind is not None)

    def geryon(self, *args, check=True) -> str:
        result = subprocess.run([sys.executable, "-m", "geryon", *args], env=self.env,
                                capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise GeryonError(f"demo: `geryon {' '.join(args)}` failed:\n{result.stderr}")
        return result.stdout

    def start(self, *args, log: str) -> subprocess.Popen:
        out = open(self.dir / f"{log}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "geryon", *args], env=self.env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def wait_until(self, check, what: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := check():
                return value
            time.sleep(0.1)
        raise GeryonError(f"demo: gave up waiting for {what}; logs are in {self.dir}")

    def step(self, text: str) -> None:
        self.echo(f"\n== {text}")

    def show(self, command: str, output: str) -> None:
        self.echo(f"$ {command}")
        for line in output.rstrip("\n").splitlines():
            self.echo(f"  {line}")

    def run(self) -> None:
        self.step("a certificate authority for the cluster")
        self.show("geryon ca init --name demo-admin",
                  self.geryon("ca", "init", "--name", "demo-admin"))

        self.step("the registry, on a free loopback port")
        port_file = self.dir / "registry.port"
        self.start("registry", "-a", "tcp!127.0.0.1!0", "--port-file", str(port_file),
                   log="registry")
        port = self.wait_until(lambda: port_file.exists() and port_file.read_text().strip(),
                               "the registry to start")
        self.registry = f"tcp!127.0.0.1!{port}"
        self.env["GERYON_REGISTRY"] = self.registry
        self.echo(f"registry at {self.registry}")

        self.step("services register themselves")
        self.start("reglisten", "-r", "svc", "echo", "tcp!127.0.0.1!0", "--", "cat",
                   log="reglisten")
        self.start("register", "-a", "svc", "web", "-a", "note", "a plain web server", "--",
                   sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "{port}",
                   log="register")
        self.run_shell_registration()
        self.wait_until(lambda: len(self.geryon("regquery", "-n").split()) >= 3,
                        "the services to register")
        self.show("geryon regquery", self.geryon("regquery"))
        self.show("geryon regquery -n svc echo", self.geryon("regquery", "-n", "svc", "echo"))

        self.step("a live entry goes with its holder")
        web = self.procs[-1]
        web.terminate()
        web.wait()
        self.wait_until(lambda: "svc web" not in self.geryon("regquery"), "the web entry to go")
        self.show("geryon regquery   # after the web server stopped", self.geryon("regquery"))

        self.run_disks()
        self.run_rcpu()
        self.run_mapreduce()
        self.run_owen()
        self.run_web()

        self.step("any SFTP client reads the registry: it is a file tree")
        self.echo(f"  sftp -P {port} -o CertificateFile={self.home}/id_ed25519-cert.pub "
                  f"-i {self.home}/id_ed25519 -o UserKnownHostsFile={self.home}/known_hosts "
                  "demo-admin@127.0.0.1")
        if shutil.which("sftp"):
            out = subprocess.run(
                ["sftp", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                 "-o", f"CertificateFile={self.home}/id_ed25519-cert.pub",
                 "-i", f"{self.home}/id_ed25519",
                 "-o", f"UserKnownHostsFile={self.home}/known_hosts", "-P", str(port),
                 "-b", "-", "demo-admin@127.0.0.1"],
                input="ls\n", capture_output=True, text=True, timeout=30)
            self.show("sftp> ls", out.stdout.replace("sftp> ls\n", ""))

        self.step("where to look next")
        for line in ("geryon demo --keep        leaves this cluster running; use it from "
                     "another shell",
                     "docs/getting-started.md   the same on several machines",
                     "docs/cpu.md, docs/mapreduce.md, docs/owen.md, docs/web.md   each part",
                     f"{self.dir}   the logs of every process (kept with --dir)"):
            self.echo(f"  {line}")

    def started(self, *args, log: str, timeout: float = 30.0) -> subprocess.Popen:
        """Start a daemon with --ready and wait for it (it says when it serves)."""
        ready = self.dir / f"{log}.ready"
        proc = self.start(*args, "--ready", str(ready), log=log)
        self.wait_until(lambda: ready.exists() or proc.poll() is not None,
                        f"{log} to start", timeout)
        if proc.poll() is not None:
            raise GeryonError(f"demo: {log} exited; see {self.dir / (log + '.log')}")
        return proc

    def run_disks(self) -> None:
        """Nodes serve chunk disks, cpus and workers; a corpus is loaded with replicas."""
        from geryon.sample import write_corpus
        cluster_file = Path(__file__).resolve().parent.parent / "ndb" / "cluster"
        if not cluster_file.exists():
            raise GeryonError(f"demo: {cluster_file} is missing; run the demo from a checkout")
        ndb = self.dir / "cluster"
        shutil.copyfile(cluster_file, ndb)
        self.env["GERYON_NDB"] = str(ndb)

        self.step("an Owen scheduler (the labour exchange), registered as svc infsched")
        sched_ready = self.dir / "sched.address"
        self.start("sched", "-a", "tcp!127.0.0.1!0", "--state", str(self.dir / "sched"),
                   "--ready", str(sched_ready), log="sched")
        self.sched = self.wait_until(lambda: sched_ready.exists() and
                                     sched_ready.read_text().strip(), "the scheduler")
        self.env["GERYON_SCHED"] = self.sched
        self.echo(f"scheduler at {self.sched}")

        self.step("three nodes, each serving chunk disks (384 KiB chunks here, 64 MiB "
                  "normally), a cpu service and an Owen worker")
        self.nodes = [self.started(
            "node", "--chunks", str(self.dir / f"node{i}"), "--new-chunks", "3",
            "--chunk-size", "384K", "--name", f"node{i}", "--cpu", "--state",
            str(self.dir / f"state{i}"), "--cpu-chunks", "2", "--cpu-chunk-size", "8M",
            "--worker", "--worker-root", str(self.dir / f"worker{i}"), "--install", "test",
            log=f"node{i}") for i in range(3)]
        self.started("refresh", "--watch", log="refresh")
        self.show("geryon regquery svc rstyx", self.geryon("regquery", "svc", "rstyx"))

        self.step("a corpus is loaded across them, each disk with a replica on another node")
        corpus = self.dir / "corpus"
        size = write_corpus(corpus)
        self.corpus = corpus
        self.echo(f"corpus: {sum(1 for p in corpus.rglob('*') if p.is_file())} messages, "
                  f"{size / 1e6:.1f} MB of text (Python's module docstrings)")
        loaded = self.geryon("load", "--app", "mbox", "--replicas", "1", str(corpus))
        self.show("geryon load --app mbox --replicas 1 corpus", loaded)
        self.disks = [line.split()[0] for line in loaded.splitlines() if line.strip()]
        self.show("geryon disks", self.geryon("disks"))
        first = self.geryon("ls", "d0.mbox:g0/s0").split()[0]
        text = self.geryon("cat", f"d0.mbox:g0/s0/{first}")
        self.show(f"geryon cat d0.mbox:g0/s0/{first} | head -3",
                  "\n".join(text.splitlines()[:3]))

    def run_rcpu(self) -> None:
        self.step("rcpu: a command block on the next cpu, with exactly the disks named")
        rcpu = [sys.executable, "-m", "geryon", "rcpu"]
        for block in ("{ls /n}", "{ls /n/d0.mbox/g0 | head -3; echo $cpudisk}"):
            out = subprocess.run([*rcpu, "-v", block, "d0.mbox"], env=self.env,
                                 capture_output=True, text=True, timeout=120)
            self.show(f"rcpu -v '{block}' d0.mbox", out.stderr + out.stdout)

    def run_mapreduce(self) -> None:
        self.step("mapreduce: word count over every mbox disk (map on each disk, reduce "
                  "on each partition)")
        disks = [d for d in self.disks if d.endswith(".mbox")]
        words = self.word_count(disks)
        self.echo("top words:")
        for word, count in words[:8]:
            self.echo(f"  {count:>6}  {word}")
        local = self.local_word_count()
        self.echo(f"the same as the local pipeline (cat | idx | sort | agg): "
                  f"{'yes' if dict(words) == local else 'NO'}")
        if dict(words) != local:
            raise GeryonError(f"demo: the word count differs from the local pipeline; "
                              f"logs are in {self.dir}")

        self.step("again, with node2 killed in the middle: the job still completes")
        # Each map waits a second first, so that the kill lands while maps run.
        job = subprocess.Popen([sys.executable, "-m", "geryon", "mapreduce", "--name",
                                "demo-faults", "{sleep 1; idx /n/d?.mbox/*/*/*}", "agg",
                                *disks], env=self.env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        self.wait_until(lambda: "phase map" in self.geryon("regquery", "job", "demo-faults",
                                                           check=False)
                        or job.poll() is not None, "the second job's maps to start", 60)
        victim = self.nodes[2]
        victim.kill()
        victim.wait()
        self.echo("node2 killed")
        out, err = job.communicate(timeout=300)
        if job.returncode != 0:
            raise GeryonError(f"demo: the job with a node killed failed:\n{err}")
        again = self.parse_counts(self.geryon("jobs", "cat", "demo-faults"))
        self.echo(f"same answer as before: {'yes' if again == dict(words) else 'NO'}")
        if again != dict(words):
            raise GeryonError(f"demo: the answer changed with a node killed; logs are in "
                              f"{self.dir}")
        self.show("geryon jobs", self.geryon("jobs"))
        self.show("geryon disks   # node2's disks are served by their replicas",
                  self.geryon("disks"))

    def word_count(self, disks) -> list[tuple[str, int]]:
        out = self.geryon("mapreduce", "--name", "demo-wc", "idx /n/d?.mbox/*/*/*", "agg",
                          *disks)
        self.show(f"geryon mapreduce 'idx /n/d?.mbox/*/*/*' agg {' '.join(disks)}", out)
        counts = self.parse_counts(self.geryon("jobs", "cat", "demo-wc"))
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    @staticmethod
    def parse_counts(text: str) -> dict:
        counts = {}
        for line in text.splitlines():
            key, _, value = line.rpartition(" ")
            counts[key] = int(value)
        return counts

    def local_word_count(self) -> dict:
        files = sorted(str(p) for p in self.corpus.rglob("*") if p.is_file())
        out = subprocess.run(f"cat {' '.join(shlex_quote(f) for f in files)} | idx | "
                             "LC_ALL=C sort | agg", shell=True, capture_output=True,
                             text=True, env={**self.env, "PATH": bin_path()}, check=True)
        return self.parse_counts(out.stdout)

    def run_owen(self) -> None:
        self.step("Owen: a filesplit job, one md5sum task per line, pulled by the workers")
        lines = ["the quick brown fox", "jumps over", "the lazy dog", "Geryon and Owen",
                 "on three nodes"]
        tasks = self.dir / "mytasks"
        tasks.write_text("".join(line + "\n" for line in lines))
        job = subprocess.run([sys.executable, "-m", "geryon", "owen", "start", "filesplit",
                              "-l", "mytasks", "test", "md5sum"], env=self.env,
                             cwd=self.dir, capture_output=True, text=True, timeout=60,
                             check=True).stdout.strip()
        self.echo(f"$ geryon owen start filesplit -l mytasks test md5sum\n  job {job}")
        subprocess.run([sys.executable, "-m", "geryon", "owen", "wait", job], env=self.env,
                       cwd=self.dir, capture_output=True, timeout=120, check=True)
        from geryon.owen.records import read_records
        records = read_records((self.dir / "mytasks.result").read_bytes())
        self.echo("task  result (data <len> <n> records)         md5sum of the line")
        import hashlib
        for record in sorted(records, key=lambda r: r.taskno):
            want = hashlib.md5((lines[record.taskno] + "\n").encode()).hexdigest()
            self.echo(f"  {record.taskno}   {record.data.decode().split()[0]}   {want}")

    def run_web(self) -> None:
        self.step("the web monitors: nodes, jobs and the cluster, live")
        ready = self.dir / "web.address"
        self.start("web", "-a", "tcp!127.0.0.1!0", "--ready", str(ready), log="web")
        self.web = self.wait_until(lambda: ready.exists() and ready.read_text().strip(),
                                   "the web monitors")
        self.echo(f"open {self.web}")

    def run_shell_registration(self) -> None:
        """A `persist 1` entry, as a shell's `echo ... > new` makes one."""
        import asyncio

        from geryon.ns.ca import Identity
        from geryon.ns.client import Client

        async def register():
            client = await Client.connect(self.registry, Identity(self.home))
            try:
                await client.write("/new", "d0.demo host 127.0.0.1 persist 1 note 'kept'")
            finally:
                await client.close()

        asyncio.run(register())

    def wait(self) -> None:
        self.echo(f"\nthe cluster keeps running (GERYON_HOME={self.home} "
                  f"GERYON_REGISTRY='{self.registry}'); Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass

    def stop(self, keep_logs: bool = False) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if keep_logs:
            self.echo(f"the logs are kept in {self.dir}")
        elif self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
