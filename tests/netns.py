"""Several hosts on one machine: Linux network name spaces joined by a bridge.

Each Network makes a switch name space holding a bridge, and hosts with one veth link to
it, addressed 10.99.0.1, .2, ...  Nothing touches the machine's real interfaces: every
packet, mDNS included, stays inside name spaces this module made, and close() removes them.
Needs root and iproute2; a test that needs them fails (never skips) without them.
"""

import itertools
import os
import shutil
import subprocess

SUBNET = "10.99.0"
_serial = itertools.count()


def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Network:
    def __init__(self, hosts: int):
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise RuntimeError("multi-host tests need root and iproute2 (`apt-get install "
                               "iproute2`) to make network name spaces")
        tag = f"{os.getpid()}-{next(_serial)}"
        self.switch = f"gysw-{tag}"
        self.names = [f"gyh{i}-{tag}" for i in range(hosts)]
        self.addresses = [f"{SUBNET}.{i + 1}" for i in range(hosts)]
        try:
            self._build()
        except subprocess.CalledProcessError as err:
            self.close()
            raise RuntimeError(f"could not build test network: {err.stderr}") from None

    def _build(self):
        ip("netns", "add", self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for i, (ns, addr) in enumerate(zip(self.names, self.addresses)):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", self.switch, "link", "add", f"v{i}", "type", "veth", "peer", "name",
               "eth0", "netns", ns)
            ip("-n", self.switch, "link", "set", f"v{i}", "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up", "multicast", "on")

    def prefix(self, host: int) -> list[str]:
        """Put this in front of a command to run it on host number `host`."""
        return ["ip", "netns", "exec", self.names[host]]

    def run(self, host: int, argv, **kwargs):
        return subprocess.run([*self.prefix(host), *argv], **kwargs)

    def cut(self, host: int) -> None:
        """Cut the host's link (as if its cable were pulled): packets just stop."""
        ip("-n", self.switch, "link", "set", f"v{self.names.index(self.names[host])}", "down")

    def restore(self, host: int) -> None:
        """Put back a link cut() took down."""
        ip("-n", self.switch, "link", "set", f"v{host}", "up")

    def close(self) -> None:
        for ns in [*self.names, self.switch]:
            ip("netns", "del", ns, check=False)
