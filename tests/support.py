"""The one way tests (and benchmarks) start Geryon pieces: a CA home, real server
processes on loopback port 0, the real `geryon` command, and SSH options for OpenSSH."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
GERYON = str(BIN / "geryon")


def make_home(path: Path, name: str = "admin-1", roles: str = "admin,submit,worker,cpu,monitor",
              hosts: tuple = ()) -> Path:
    """A GERYON_HOME holding a new CA, and this machine's certificates from it."""
    from geryon.ns.ca import CertificateAuthority, Identity, host_names, init_local
    path.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(path / "ca")
    ca.init()
    init_local(ca, Identity(path), name, roles.split(","), [*host_names(), *hosts])
    return path


def member_home(ca_home: Path, path: Path, name: str, roles: str) -> Path:
    """A GERYON_HOME for another member of the cluster whose CA is in ca_home."""
    from geryon.ns.ca import CertificateAuthority, Identity, host_names
    ca = CertificateAuthority(ca_home / "ca")
    ident = Identity(path)
    ident.trust(ca.public_key())
    ident.store_certificate("id_ed25519", ca.sign_user(ident.new_key("id_ed25519"), name,
                                                       roles.split(",")))
    ident.store_certificate("host_ed25519", ca.sign_host(ident.new_key("host_ed25519"),
                                                         host_names()))
    return path


def env_for(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GERYON_")}
    env["GERYON_HOME"] = str(home)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def geryon(home: Path, *args, input=None, timeout=30, check=False, **extra_env):
    """Run the real `geryon` command; return the CompletedProcess (text)."""
    result = subprocess.run([GERYON, *args], env=env_for(home, **extra_env), input=input,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"geryon {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Poll until predicate() is truthy; return its value or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Process:
    """A Geryon daemon started as a real process, with its log and its port.

    Every one started is remembered, so that a test that fails half way still leaves
    nothing running (see conftest.py)."""

    running: set = set()

    def __init__(self, home: Path, args: list, port_file: Path | None = None, prefix=(),
                 **extra_env):
        self.home, self.args, self.port_file = home, args, port_file
        self.prefix = list(prefix)
        self.env = env_for(home, **extra_env)
        self.log_path = home / f"log-{args[0]}-{time.monotonic_ns()}.txt"
        self.proc = None
        self.start()

    def start(self):
        if self.port_file is not None and self.port_file.exists():
            self.port_file.unlink()
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*self.prefix, GERYON, *self.args], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        Process.running.add(self)
        if self.port_file is not None:
            wait_for(lambda: self.port_file.exists() and self.port_file.read_text().strip()
                     or self.proc.poll() is not None, 20, what=f"{self.args[0]} to start")
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.args} exited early:\n{self.output()}")
        return self

    @property
    def port(self) -> int:
        return int(self.port_file.read_text())

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.args[0]} did not stop within 10 s of signal {sig}")
        finally:
            self.log.close()
            Process.running.discard(self)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.kill(signal.SIGTERM)

    @classmethod
    def kill_all(cls, keep=frozenset()):
        """Stop every process started (but those kept): SIGTERM, so that a node removes
        its tmpfs cache, and SIGKILL for what has not stopped within a few seconds."""
        procs = list(cls.running - set(keep))
        for proc in procs:
            if proc.proc.poll() is None:
                proc.proc.terminate()
        deadline = time.monotonic() + 5
        for proc in procs:
            try:
                proc.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.proc.kill()
                proc.proc.wait(10)
            proc.log.close()
            cls.running.discard(proc)


def start_registry(home: Path, host="127.0.0.1", prefix=(), extra=(), port=0) -> Process:
    port_file = home / "registry.port"
    proc = Process(home, ["registry", "-a", f"tcp!{host}!{port}", "--port-file", str(port_file),
                          *extra], port_file, prefix=prefix)
    proc.address = f"tcp!{host}!{proc.port}"
    proc.args[2] = proc.address  # a restart comes back on the same port
    return proc


def ssh_options(home: Path) -> list[str]:
    """OpenSSH options that use a Geryon home's certificate and CA trust, nothing else."""
    return ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={home / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null",
            "-i", str(home / "id_ed25519"),
            "-o", f"CertificateFile={home / 'id_ed25519-cert.pub'}"]


def start_node(home: Path, registry: str, chunks: Path | None, name: str, new_chunks: int = 0,
               chunk_size: str = "1M", prefix=(), extra=()) -> Process:
    """A `geryon node` (chunks in a directory, and whatever `extra` asks, such as --cpu);
    returns once its ready file says every chunk and service is registered."""
    args = ["node", "-R", registry, "--name", name, *extra]
    if chunks is not None:
        args += ["--chunks", str(chunks)]
    if new_chunks:
        args += ["--new-chunks", str(new_chunks), "--chunk-size", chunk_size]
    ready = home / f"node-{name}-{time.monotonic_ns()}.ready"
    proc = Process(home, [*args, "--ready", str(ready)], ready, prefix=prefix)
    proc.ready = ready
    return proc


def cpu_options(state: Path, cpu_chunk_size: str = "4M", cpu_chunks: int = 2) -> tuple:
    """start_node's `extra` for a node that is also a cpu, its output chunks in state."""
    return ("--cpu", "--state", str(state), "--cpu-chunks", str(cpu_chunks),
            "--cpu-chunk-size", cpu_chunk_size)


def make_corpus(path: Path, files: int = 60, words: int = 3000, seed: int = 1) -> Path:
    """Text files of words under path/a/b, different for every file."""
    import random
    rng = random.Random(seed)
    vocabulary = [f"{w}{i}" for w in ("alpha", "beta", "gamma", "delta", "mail", "the")
                  for i in range(300)]
    for i in range(files):
        target = path / ("inbox" if i % 2 else "sent") / f"{i // 10}" / f"m{i}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(" ".join(rng.choice(vocabulary) for _ in range(words)) + "\n")
    return path


def in_process_server(home: Path, root, **options):
    """The one way to serve a tree in the test's own process: an async context manager
    giving a started geryon.ns.server.Server on a loopback port 0 (default limits, unless
    `limits` says otherwise)."""
    import contextlib

    from geryon.ns.ca import Identity
    from geryon.ns.limits import SessionLimits
    from geryon.ns.server import Server

    @contextlib.asynccontextmanager
    async def serving():
        server = Server(root, Identity(home), limits=options.pop("limits", SessionLimits()),
                        **options)
        await server.start("tcp!127.0.0.1!0")
        try:
            yield server
        finally:
            await server.close()

    return serving()
