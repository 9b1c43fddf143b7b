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

    def run_disks(self) -> None:
        """Nodes serve chunk disks; a corpus is loaded across them; disks come and go."""
        from geryon.sample import write_corpus
        cluster_file = Path(__file__).resolve().parent.parent / "ndb" / "cluster"
        if not cluster_file.exists():
            raise GeryonError(f"demo: {cluster_file} is missing; run the demo from a checkout")
        ndb = self.dir / "cluster"
        shutil.copyfile(cluster_file, ndb)
        self.env["GERYON_NDB"] = str(ndb)

        self.step("three nodes serve chunk disks (256 KiB chunks here, 64 MiB normally)")
        nodes = [self.start("node", "--chunks", str(self.dir / f"node{i}"), "--new-chunks", "2",
                            "--chunk-size", "256K", "--name", f"node{i}", log=f"node{i}")
                 for i in range(3)]
        self.wait_until(lambda: len(self.geryon("regquery", "-n", "resource", "kfs").split())
                        >= 6, "the nodes' chunks to register")
        self.show("geryon regquery resource kfs", self.geryon("regquery", "resource", "kfs"))

        self.step("a corpus is loaded across them, named in ndb/cluster, refreshed")
        corpus = self.dir / "corpus"
        size = write_corpus(corpus)
        self.echo(f"corpus: {sum(1 for p in corpus.rglob('*') if p.is_file())} messages, "
                  f"{size / 1e6:.1f} MB of text (Python's module docstrings)")
        self.show("geryon load --app mbox corpus", self.geryon("load", "--app", "mbox",
                                                                str(corpus)))
        self.show("geryon disks", self.geryon("disks"))
        self.show("geryon ls d1.mbox", self.geryon("ls", "d1.mbox"))
        first = self.geryon("ls", "d0.mbox:g0/s0").split()[0]
        text = self.geryon("cat", f"d0.mbox:g0/s0/{first}")
        self.show(f"geryon cat d0.mbox:g0/s0/{first} | head -4",
                  "\n".join(text.splitlines()[:4]))

        self.step("a node dies; refresh --watch drops its disks")
        self.start("refresh", "--watch", log="refresh")
        time.sleep(1)
        victim = nodes[2]
        victim.kill()
        victim.wait()
        self.wait_until(lambda: "down" in self.geryon("disks"), "refresh to notice")
        self.show("geryon disks   # after node2 was killed", self.geryon("disks"))

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
