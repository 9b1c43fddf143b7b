"""The cluster certificate authority and the keys and certificates of one machine or person.

Theory of operation.  One CA key signs SSH certificates: host certificates for servers
(principals: the names clients dial) and user certificates for people and daemons
(principals: the identity first, then its roles).  Every server trusts exactly that CA for
clients (`cert-authority` in its authorized keys) and every client trusts exactly that CA
for hosts (`@cert-authority *` in known_hosts), so adding a machine is one signed key.
OpenSSH's ssh and sftp use the same files.

Files under geryon.config.home():
  ca/ca_ed25519, ca/ca_ed25519.pub, ca/tokens.db   the CA (only on the CA machine)
  id_ed25519, id_ed25519-cert.pub                   user key and certificate
  host_ed25519, host_ed25519-cert.pub               host key and certificate
  cluster_ca.pub, known_hosts                       trust in the CA
"""

import base64
import hashlib
import os
import secrets
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from geryon.config import home
from geryon.errors import GeryonError
from geryon.roles import ROLES, identity_problem
DEFAULT_VALIDITY = 365 * 24 * 3600
MAX_VALIDITY = 36500 * 24 * 3600

# Transport tuning, measured on loopback (bench/README.md): AES-GCM is done in C by
# `cryptography` and goes ~3x faster than asyncssh's default chacha20-poly1305; a larger
# window and packets let a 64 MiB chunk image cross at ~400 MB/s instead of ~120.
TRANSPORT = dict(
    encryption_algs=["aes256-gcm@openssh.com", "aes128-gcm@openssh.com",
                     "chacha20-poly1305@openssh.com", "aes256-ctr", "aes128-ctr"],
    window=8 << 20, max_pktsize=256 << 10)
TOKEN_PREFIX = "gj1-"


class CAError(GeryonError):
    """A certificate authority, key or certificate problem."""


def check_roles(roles) -> list[str]:
    """Validate role names, keeping their order and dropping repeats."""
    out = []
    for role in roles:
        if role not in ROLES:
            raise CAError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        if role not in out:
            out.append(role)
    return out


def check_name(name: str) -> str:
    """An identity must be usable as an SSH user name, a registry owner and a word on a
    terminal: printable ASCII from roles.IDENTITY_CHARS, and not a role name."""
    problem = identity_problem(name)
    if problem:
        raise CAError(f"identity {ascii(name)} cannot be used: {problem}; choose a plain "
                      "name such as alice or node3")
    return name


def check_validity(seconds) -> None:
    if not 0 < seconds <= MAX_VALIDITY:
        raise CAError(f"a certificate must be valid for a positive time of at most "
                      f"{MAX_VALIDITY // 86400} days (asked: {seconds} s)")


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def host_names() -> list[str]:
    """Names and addresses by which this machine may be dialled."""
    names = [socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1", "::1"]
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            names.append(info[4][0])
    except OSError:
        pass  # a host name that does not resolve: the names above must do
    return list(dict.fromkeys(n for n in names if n))


@dataclass
class CertificateAuthority:
    """The CA key pair in `<home>/ca`, and the one-time join tokens it has issued."""

    directory: Path

    @classmethod
    def at(cls, directory: Path | None = None) -> "CertificateAuthority":
        return cls(Path(directory) if directory else home() / "ca")

    @property
    def key_path(self) -> Path:
        return self.directory / "ca_ed25519"

    def exists(self) -> bool:
        return self.key_path.exists()

    def init(self) -> asyncssh.SSHKey:
        """Create the CA key; refuse to overwrite one."""
        if self.exists():
            raise CAError(f"a certificate authority already exists in {self.directory}; "
                          "remove that directory first if you really mean to replace it")
        key = asyncssh.generate_private_key("ssh-ed25519", comment="geryon cluster CA")
        write_private(self.key_path, key.export_private_key())
        (self.directory / "ca_ed25519.pub").write_bytes(key.export_public_key())
        return key

    def key(self) -> asyncssh.SSHKey:
        if not self.exists():
            raise CAError(f"no certificate authority in {self.directory}; "
                          "run `geryon ca init` on the CA machine")
        return asyncssh.read_private_key(self.key_path)

    def public_key(self) -> asyncssh.SSHKey:
        return self.key().convert_to_public()

    def sign_user(self, public_key, name: str, roles, validity=DEFAULT_VALIDITY):
        """A user certificate whose principals are the identity and then its roles."""
        name, roles = check_name(name), check_roles(roles)
        check_validity(validity)
        now = int(time.time())
        return self.key().generate_user_certificate(
            public_key, key_id=name, principals=[name, *roles], serial=secrets.randbits(63),
            valid_after=now - 300, valid_before=now + int(validity),
            permit_x11_forwarding=False, permit_agent_forwarding=False,
            permit_port_forwarding=False, permit_pty=True, permit_user_rc=False)

    def sign_host(self, public_key, names, validity=DEFAULT_VALIDITY):
        """A host certificate valid for the given host names and addresses."""
        names = [n for n in names if n]
        if not names:
            raise CAError("a host certificate needs at least one host name or address")
        check_validity(validity)
        now = int(time.time())
        return self.key().generate_host_certificate(
            public_key, key_id=names[0], principals=names, serial=secrets.randbits(63),
            valid_after=now - 300, valid_before=now + int(validity))

    # One-time join tokens: the secret's hash, its roles and expiry live in tokens.db, so
    # that the registry (which signs joins) and `geryon ca token` share them.
    def _tokens(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.directory / "tokens.db", timeout=10, isolation_level=None)
        db.execute("create table if not exists token (hash text primary key, roles text, "
                   "expires real, used_by text)")
        db.execute("create table if not exists identity (name text primary key, since real)")
        return db

    def claim_identity(self, name: str, renew: bool = False) -> None:
        """Record an identity as taken; a join may not take one that another holds.
        renew: the CA's own operator signs for the name again, taken or not."""
        check_name(name)
        db = self._tokens()
        try:
            with db:
                db.execute(f"insert {'or ignore' if renew else ''} into identity values (?, ?)",
                           (name, time.time()))
        except sqlite3.IntegrityError:
            raise CAError(f"identity {name!r} is taken in this cluster; join with another "
                          "--name") from None
        finally:
            db.close()

    def issue_token(self, roles=("worker", "cpu"), ttl=3600.0) -> str:
        """A one-time token that lets one machine join; it carries the CA's public key."""
        roles = check_roles(roles)
        secret = secrets.token_bytes(16)
        ca_raw = self.public_key().public_data[-32:]
        db = self._tokens()
        with db:
            db.execute("insert into token values (?, ?, ?, null)",
                       (hashlib.sha256(secret).hexdigest(), " ".join(roles), time.time() + ttl))
        db.close()
        return TOKEN_PREFIX + base64.urlsafe_b64encode(secret + ca_raw).decode().rstrip("=")

    def check_token(self, secret: bytes) -> list[str]:
        """The roles of a token that is known, unspent and unexpired; else CAError."""
        db = self._tokens()
        try:
            row = db.execute("select roles, expires, used_by from token where hash = ?",
                             (hashlib.sha256(secret).hexdigest(),)).fetchone()
        finally:
            db.close()
        return self._usable(row)

    @staticmethod
    def _usable(row) -> list[str]:
        if row is None:
            raise CAError("join token unknown to this CA; ask for a new one "
                          "(`geryon ca token` on the CA machine)")
        roles, expires, used_by = row
        if used_by is not None:
            raise CAError(f"join token already used (by {used_by}); tokens work once")
        if time.time() > expires:
            raise CAError("join token expired; ask for a new one")
        return roles.split()

    def redeem_token(self, secret: bytes, joiner: str) -> list[str]:
        """Use a token once for the identity `joiner`, which must not be taken already:
        return its roles, or raise CAError (spent, expired, unknown, name taken) and change
        nothing."""
        check_name(joiner)
        db = self._tokens()
        try:
            with db:
                db.execute("begin immediate")
                row = db.execute("select roles, expires, used_by from token where hash = ?",
                                 (hashlib.sha256(secret).hexdigest(),)).fetchone()
                roles = self._usable(row)
                if db.execute("select 1 from identity where name = ?", (joiner,)).fetchone():
                    raise CAError(f"identity {joiner!r} is taken in this cluster; join with "
                                  "another --name (the token is still good)")
                db.execute("insert into identity values (?, ?)", (joiner, time.time()))
                db.execute("update token set used_by = ? where hash = ?",
                           (joiner, hashlib.sha256(secret).hexdigest()))
        finally:
            db.close()
        return roles


def parse_token(token: str) -> tuple[bytes, asyncssh.SSHKey]:
    """Split a join token into its secret and the CA public key it vouches for."""
    token = token.strip()
    if not token.startswith(TOKEN_PREFIX):
        raise CAError(f"join token should start with {TOKEN_PREFIX!r}; copy it whole from "
                      "`geryon ca token`")
    body = token[len(TOKEN_PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != 48:
        raise CAError("join token is damaged (wrong length); copy it whole")
    blob = _ssh_string(b"ssh-ed25519") + _ssh_string(raw[16:])
    ca = asyncssh.import_public_key(b"ssh-ed25519 " + base64.b64encode(blob))
    return raw[:16], ca


def _ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


class RoleKeys(asyncssh.SSHAuthorizedKeys):
    """Authorized keys that trust the cluster CA and hand the certificate's principals on.

    asyncssh keeps the options of the authorized-keys entry that matched; returning the
    principals among them lets the session learn its roles via get_key_option().
    """

    def validate(self, key, client_host, client_addr, cert_principals=None, ca=False):
        options = super().validate(key, client_host, client_addr, cert_principals, ca)
        if options is None or not ca:
            return None  # only CA-signed certificates are accepted, never bare keys
        return {**options, "geryon-principals": tuple(cert_principals or ())}


@dataclass
class Identity:
    """The key, certificates and CA trust this process uses to serve and to dial."""

    directory: Path

    @classmethod
    def load(cls, directory: Path | None = None) -> "Identity":
        return cls(Path(directory) if directory else home())

    def path(self, name: str) -> Path:
        return self.directory / name

    def ca_public(self) -> asyncssh.SSHKey:
        path = self.path("cluster_ca.pub")
        if not path.exists():
            raise CAError(f"{path} is missing: this machine has not joined a cluster; run "
                          "`geryon join TOKEN REGISTRY` (or `geryon ca init` on the CA machine)")
        return asyncssh.read_public_key(path)

    def trust(self, ca_public: asyncssh.SSHKey) -> None:
        """Trust this CA for hosts and clients."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        line = ca_public.export_public_key().decode().strip()
        self.path("cluster_ca.pub").write_text(line + "\n")
        self.path("known_hosts").write_text(f"@cert-authority * {line}\n")

    def _pair(self, stem: str, what: str):
        key_path, cert_path = self.path(stem), self.path(stem + "-cert.pub")
        if not key_path.exists() or not cert_path.exists():
            raise CAError(f"{cert_path} is missing: this machine has no {what} certificate; "
                          "run `geryon join TOKEN REGISTRY` or `geryon ca sign`")
        return asyncssh.read_private_key(key_path), asyncssh.read_certificate(cert_path)

    def user(self):
        """(private key, certificate) for dialling servers."""
        return self._pair("id_ed25519", "user")

    def host(self):
        """(private key, certificate) for serving."""
        return self._pair("host_ed25519", "host")

    def name(self) -> str:
        """The identity in the user certificate (its first principal)."""
        return self.user()[1].principals[0]

    def new_key(self, stem: str) -> asyncssh.SSHKey:
        """Make (or reuse) a key pair for a certificate to be issued."""
        path = self.path(stem)
        if path.exists():
            return asyncssh.read_private_key(path)
        key = asyncssh.generate_private_key("ssh-ed25519")
        write_private(path, key.export_private_key())
        self.path(stem + ".pub").write_bytes(key.export_public_key())
        return key

    def store_certificate(self, stem: str, cert) -> Path:
        path = self.path(stem + "-cert.pub")
        path.write_bytes(cert.export_certificate())
        return path

    def client_options(self, keepalive: float = 1.0) -> dict:
        """asyncssh.connect() keyword arguments: our certificate, CA-only host trust."""
        key, cert = self.user()
        return dict(username=cert.principals[0], client_keys=[(key, cert)],
                    known_hosts=asyncssh.import_known_hosts(self.path("known_hosts").read_text()),
                    agent_path=None, config=None, preferred_auth="publickey",
                    keepalive_interval=keepalive, keepalive_count_max=3, **TRANSPORT)

    def server_options(self, keepalive: float = 1.0) -> dict:
        """asyncssh.listen() keyword arguments: our host certificate, CA-signed clients only."""
        key, cert = self.host()
        ca = self.ca_public().export_public_key().decode().strip()
        return dict(server_host_keys=[(key, cert)],
                    authorized_client_keys=RoleKeys(f"cert-authority {ca}"),
                    keepalive_interval=keepalive, keepalive_count_max=3,
                    login_timeout=30, **TRANSPORT)


def init_local(ca: CertificateAuthority, ident: Identity, name: str, roles, hosts) -> None:
    """Make this machine the CA's own first member: trust, user and host certificates."""
    ca.claim_identity(name)
    ident.trust(ca.public_key())
    user_key = ident.new_key("id_ed25519")
    ident.store_certificate("id_ed25519", ca.sign_user(user_key, name, roles))
    host_key = ident.new_key("host_ed25519")
    ident.store_certificate("host_ed25519", ca.sign_host(host_key, hosts))
