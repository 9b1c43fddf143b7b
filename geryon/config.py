"""Configuration: one table of defaults, one object, one validation.

Values come from, in rising order of precedence: the DEFAULTS table, the file
`$GERYON_HOME/config` (TOML; GERYON_HOME defaults to ~/.geryon), environment variables
`GERYON_<KEY>` (upper case), and flags given to a command.  `geryon join` writes the file,
so after joining no command needs flags.
"""

import os
import socket
import tomllib
from dataclasses import field, make_dataclass
from pathlib import Path

from geryon.errors import GeryonError


class ConfigError(GeryonError):
    """A configuration value that cannot be used."""


# key -> (default, help).  A default of None means "derived": see Config properties.
DEFAULTS = {
    "registry": ("", "dial string of the registry, e.g. tcp!gridhost!6675"),
    "name": ("", "this machine's or person's identity in the cluster (default: user@host)"),
    "host": ("", "the host name other machines use to reach services here"),
    "mdns": ("off", "find the registry by mDNS when no address is set: on or off"),
    "mdns_interface": ("", "address of the interface mDNS may use (required when mdns is on)"),
    "keepalive": ("1", "seconds between SSH keepalives; a peer is dead after 3 missed"),
    "ndb": ("", "the cluster's ndb file naming disks (default: $GERYON_HOME/ndb/cluster)"),
    # Limits every server puts on one connection (geryon.ns.limits explains the bounds).
    "sftp_max_read": ("1048576", "bytes one SFTP read returns at most"),
    "sftp_max_write": ("1048576", "bytes one SFTP write may carry"),
    "sftp_max_handles": ("256", "files open at once on one SFTP session"),
    "ssh_max_sessions": ("256", "sessions (channels) open at once on one SSH connection"),
    "ssh_max_command": ("4096", "bytes of one SSH exec command line"),
    "ssh_login_timeout": ("20", "seconds a connection has to finish its SSH handshake"),
    # Limits the registry puts on everyone (docs/registry.md states the memory they bound).
    "registry_line_bytes": ("16384", "bytes of one registry service line, update or filter"),
    "registry_pairs": ("256", "attribute/value pairs of one registry service or filter"),
    "registry_identity_bytes": ("134217728", "bytes of the registry's memory the entries "
                                "of one identity may take"),
    "registry_history": ("4096", "changes the registry remembers for event readers"),
    "registry_history_bytes": ("4194304", "bytes of changes the registry remembers"),
    # The Owen scheduler (docs/sched.md) and its workers.
    "sched": ("", "dial string of the Owen scheduler, e.g. tcp!gridhost!6678 (default: "
              "the registry's svc infsched entry)"),
    "owen_blacklist_after": ("5", "failures in a row beyond which a worker is blacklisted"),
    "owen_parole": ("600", "seconds a blacklisted worker waits before it is let back"),
    "owen_copies": ("2", "attempts of one task at once (speculative re-runs)"),
    "owen_deadline": ("3600", "seconds an attempt may run, unless its job sets a deadline"),
    "owen_grace": ("30", "seconds past a deadline before the scheduler gives up an attempt"),
    "owen_data_bytes": ("1073741824", "bytes of one job's input (its data file)"),
    "owen_result_bytes": ("67108864", "bytes of one task's result"),
}
# Keys whose values must be positive numbers (checked by Config.validate).
POSITIVE = ("keepalive", "sftp_max_read", "sftp_max_write", "sftp_max_handles",
            "ssh_max_sessions", "ssh_max_command", "ssh_login_timeout",
            "registry_line_bytes", "registry_pairs", "registry_identity_bytes",
            "registry_history", "registry_history_bytes", "owen_blacklist_after",
            "owen_parole", "owen_copies", "owen_deadline", "owen_grace", "owen_data_bytes",
            "owen_result_bytes")
# Keys in seconds (any positive number); the other POSITIVE keys are whole numbers.
SECONDS = ("keepalive", "ssh_login_timeout", "owen_parole", "owen_deadline", "owen_grace")
BOOLEANS = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False,
            "yes": True, "no": False}


def home() -> Path:
    """Where this user's keys, certificates, config and state live."""
    return Path(os.environ.get("GERYON_HOME") or Path.home() / ".geryon")


# One attribute per key of DEFAULTS, each a string: the table is the one list of settings.
_Settings = make_dataclass("_Settings", [(key, str, field(default=default))
                                         for key, (default, _) in DEFAULTS.items()])


class Config(_Settings):
    """Validated settings for one command run (Config.load)."""

    @classmethod
    def load(cls, **overrides) -> "Config":
        """Defaults < config file < GERYON_* environment < non-empty overrides (flags)."""
        values = {key: default for key, (default, _) in DEFAULTS.items()}
        path = home() / "config"
        if path.exists():
            try:
                data = tomllib.loads(path.read_text())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                raise ConfigError(f"config file {path}: {err}; fix or remove it") from None
            for key, value in data.items():
                if key not in DEFAULTS:
                    raise ConfigError(f"config file {path}: unknown key {key!r}; "
                                      f"known keys: {', '.join(DEFAULTS)}")
                values[key] = str(value)
        for key in DEFAULTS:
            env = os.environ.get(f"GERYON_{key.upper()}")
            if env is not None:
                values[key] = env
        for key, value in overrides.items():
            if key not in DEFAULTS:
                raise ConfigError(f"unknown setting {key!r}; known: {', '.join(DEFAULTS)}")
            if value not in (None, ""):
                values[key] = str(value)
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.mdns.lower() not in BOOLEANS:
            raise ConfigError(f"mdns is {self.mdns!r}; use one of on, off")
        if self.registry:
            from geryon import dial
            dial.parse(self.registry, "registry")
        if self.sched:
            from geryon import dial
            dial.parse(self.sched, "infsched")
        for key in POSITIVE:
            value = getattr(self, key)
            kind = float if key in SECONDS else int
            try:
                if kind(value) <= 0:
                    raise ValueError
            except ValueError:
                raise ConfigError(f"{key} is {value!r}; use a positive "
                                  f"{'number' if kind is float else 'whole number'} "
                                  f"({DEFAULTS[key][1]})") from None

    @property
    def ndb_path(self) -> Path:
        return Path(self.ndb) if self.ndb else home() / "ndb" / "cluster"

    @property
    def use_mdns(self) -> bool:
        return BOOLEANS[self.mdns.lower()]

    @property
    def identity(self) -> str:
        """The name this user or daemon is known by (its certificate's first principal)."""
        if self.name:
            return self.name
        user = os.environ.get("USER") or os.environ.get("LOGNAME") or "user"
        return f"{user}@{socket.gethostname()}"

    def save(self, **changes) -> Path:
        """Write the given keys into the config file, keeping the others."""
        path = home() / "config"
        data = {}
        if path.exists():
            data = tomllib.loads(path.read_text())
        data.update({k: str(v) for k, v in changes.items()})
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{k} = {toml_string(v)}\n" for k, v in sorted(data.items()))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        return path


def toml_string(value: str) -> str:
    """A TOML basic string for value."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if ord(c) >= 32 else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'

