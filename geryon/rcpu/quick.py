"""The `rcpu` command's fast start: hand the command to the local rcpu agent
(geryon.rcpu.mux) with this process's stdin, stdout and stderr, wait for its exit status,
and exit with it.  Only the standard library is loaded here; the agent is started when
there is none, and without one (or with GERYON_RCPU_AGENT=off, or for -h) the full
command runs in this process (geryon.cli.rcpu).
"""

import json
import os
import socket
import sys
import time


def socket_path(home, environ) -> str:
    """The agent's socket for this home and these GERYON_* settings."""
    import hashlib
    settings = sorted((k, v) for k, v in environ.items() if k.startswith("GERYON_"))
    digest = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]
    return os.path.join(home, "run", f"rcpu-{digest}.sock")


class NoAgent(Exception):
    """There is no agent to ask, or it went away before answering."""


def ask(path: str, argv: list[str]) -> int:
    """Run the command through the agent at path; its exit status."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise NoAgent from None
    with sock:
        request = json.dumps({"argv": argv, "cwd": os.getcwd()}).encode() + b"\n"
        try:
            socket.send_fds(sock, [request], [0, 1, 2])
        except OSError:
            raise NoAgent from None
        answer = b""
        while not answer.endswith(b"\n"):
            try:
                data = sock.recv(4096)
            except KeyboardInterrupt:
                return 130  # closing the socket ends the block
            if not data:
                if answer:
                    break
                os.write(2, b"rcpu: the local rcpu agent went away during the block\n")
                return 255
            answer += data
    return int(json.loads(answer)["exit"])


def start_agent(path: str) -> None:
    import subprocess
    subprocess.Popen([sys.executable, "-m", "geryon.rcpu.mux", path],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def main() -> None:
    argv = sys.argv[1:]
    if os.environ.get("GERYON_RCPU_AGENT", "on") == "off" or any(
            a in ("-h", "--help") for a in argv) or not usable_streams():
        direct()
    path = socket_path(geryon_home(), os.environ)
    try:
        sys.exit(ask(path, argv))
    except NoAgent:
        pass
    start_agent(path)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.02)
        try:
            sys.exit(ask(path, argv))
        except NoAgent:
            continue
    direct()


def geryon_home() -> str:
    """geryon.config.home(), without the 20 ms of loading the config module."""
    return os.environ.get("GERYON_HOME") or os.path.join(os.path.expanduser("~"), ".geryon")


def usable_streams() -> bool:
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return False
    return True


def direct() -> None:
    from geryon.cli.rcpu import main as command
    command()
    sys.exit(0)


if __name__ == "__main__":
    main()
