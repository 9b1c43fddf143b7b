"""Dial strings, as in Inferno: `net!host!service`.

`tcp!gridserver!6678`, `net!host!registry`, `tcp!*!0` (any local address, any free port
when listening).  A bare `host` or `host!port` takes the network and service given by the
caller, like Inferno's netmkaddr.  This is the one parser; everything that takes an
address goes through it.
"""

from dataclasses import dataclass

from geryon.errors import GeryonError

SERVICES = {"styx": 6666, "rstyx": 6668, "registry": 6675, "infsched": 6678}
NETWORKS = ("tcp", "net")


class DialError(GeryonError, ValueError):
    """A dial string that cannot be used."""


@dataclass(frozen=True)
class Address:
    """A parsed dial string: host is '*' for any local address (listening only)."""

    host: str
    port: int

    @property
    def any_host(self) -> bool:
        return self.host == "*"

    def __str__(self) -> str:
        return f"tcp!{self.host}!{self.port}"

    def bind_host(self) -> str:
        """The host to pass to a listening socket ('' for any local address)."""
        return "" if self.any_host else self.host


def parse(text: str, service: str | int | None = None) -> Address:
    """Parse `net!host!service` (or `host!service`, or `host` with a default service)."""
    if not isinstance(text, str) or not text.strip():
        raise DialError("empty dial string; write it as tcp!host!port, e.g. tcp!127.0.0.1!6675")
    text = text.strip()
    parts = text.split("!")
    if len(parts) == 3:
        net, host, svc = parts
        if net not in NETWORKS:
            raise DialError(f"dial string {text!r}: unknown network {net!r}; "
                            f"use one of {', '.join(NETWORKS)}")
    elif len(parts) == 2:
        host, svc = parts
    elif len(parts) == 1:
        host, svc = parts[0], service
        if svc is None:
            raise DialError(f"dial string {text!r} names no port or service; "
                            f"write it as tcp!{text}!port")
    else:
        raise DialError(f"dial string {text!r} has too many '!'; write it as tcp!host!port")
    if not host:
        raise DialError(f"dial string {text!r} names no host; use * for any local address")
    if any(c.isspace() or ord(c) < 32 for c in host):
        raise DialError(f"dial string {text!r}: bad character in host {host!r}")
    return Address(host, port_of(svc, text))


def port_of(svc: str | int, text: str = "") -> int:
    """The port number for a service name or number."""
    if isinstance(svc, int):
        port = svc
    elif svc in SERVICES:
        port = SERVICES[svc]
    elif svc.isascii() and svc.isdigit():
        port = int(svc)
    else:
        names = ", ".join(f"{k} ({v})" for k, v in SERVICES.items())
        raise DialError(f"dial string {text!r}: unknown service {svc!r}; "
                        f"use a port number or one of {names}")
    if not 0 <= port <= 65535:
        raise DialError(f"dial string {text!r}: port {port} is out of range 0-65535")
    return port
