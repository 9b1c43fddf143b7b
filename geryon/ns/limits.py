"""The limits every Geryon SSH server puts on one connection and its SFTP sessions.

Each is checked before anything is stored or expanded, and a request past one is refused
with a message that names the limit and how to raise it.  The defaults are far above what
the CLI, the daemons and OpenSSH clients use (a 32-256 KiB read or write, a handful of
open files), and they bound what one connection can make a server hold: at most
max_sessions x max_handles open files, and one request of at most max_write bytes in
flight per session (asyncssh answers a session's requests one at a time).
"""

from dataclasses import dataclass, fields

from geryon.errors import LimitExceeded


@dataclass(frozen=True)
class SessionLimits:
    """Limits per connection (sessions, handshake time) and per SFTP session."""

    max_read: int = 1 << 20        # bytes one read returns at most (a longer one is cut short)
    max_write: int = 1 << 20       # bytes one write may carry
    max_handles: int = 256         # files and directories open at once on one session
    max_sessions: int = 256        # channels open at once on one connection
    max_command: int = 4096        # bytes of one exec request's command line
    login_timeout: float = 20.0    # seconds to finish the handshake and authentication

    @classmethod
    def load(cls, config=None) -> "SessionLimits":
        """The limits from the configuration (geryon.config: sftp_max_read and friends)."""
        if config is None:
            from geryon.config import Config
            config = Config.load()
        return cls(**{f.name: type(f.default)(getattr(config, CONFIG_KEYS[f.name]))
                      for f in fields(cls)})


# limit -> its key in geryon.config's table
CONFIG_KEYS = {"max_read": "sftp_max_read", "max_write": "sftp_max_write",
               "max_handles": "sftp_max_handles", "max_sessions": "ssh_max_sessions",
               "max_command": "ssh_max_command", "login_timeout": "ssh_login_timeout"}


def refuse(what: str, size: int, limit: int, key: str) -> LimitExceeded:
    """The error for an input past a limit: what, how big, the limit, the setting."""
    return LimitExceeded(f"{what} is {size}; the limit is {limit} (setting {key}; raise it "
                         f"in $GERYON_HOME/config or GERYON_{key.upper()} on the server)")
