"""Enrolment: how a new machine gets its certificates with a one-time token.

The CA machine's registry serves, to the user `join` authenticated by a token (as SSH
password), a tree with one file, `join`.  The joiner writes

    name NAME
    userkey <openssh public key>
    hostkey <openssh public key>
    hostnames NAME ...

and reads back `ca <key>`, `usercert <cert>`, `hostcert <cert>` and `roles ...` lines.
The joiner checks the server's host certificate against the CA key inside the token before
it sends the token, so a token is never given to an impostor.
"""

import logging

import asyncssh

from geryon import quote
from geryon.ns.ca import CAError, CertificateAuthority, check_name, parse_token
from geryon.ns.tree import File, NsError, StaticDir, TextHandle


log = logging.getLogger("geryon.ns")

MALFORMED = ("join request is malformed ({}); it needs name, userkey, hostkey and hostnames "
             "lines")


class Enrolment:
    """Checks tokens and signs the joiner's keys; lives beside a CA."""

    def __init__(self, ca: CertificateAuthority):
        self.ca = ca

    def refusal(self, password: str) -> str | None:
        """Why a password is not a known, unspent and unexpired token of this CA, or None
        when it is: only then does the connection get a session.  It is redeemed when the
        join is made."""
        try:
            secret, ca_key = parse_token(password)
            if ca_key != self.ca.public_key():
                return "the token is for another cluster's CA"
            self.ca.check_token(secret)
        except CAError as err:
            log.warning("join refused at authentication: %s", err)
            return str(err)
        return None

    def tree(self, caller) -> "EnrolmentDir":
        return EnrolmentDir({"join": JoinFile(self)})

    def sign(self, request: bytes, token: str, peer: str) -> bytes:
        fields = {}
        try:
            for line in request.decode("utf-8", "replace").splitlines():
                words = quote.split(line)
                if words:
                    fields[words[0]] = words[1:]
        except quote.QuoteError as err:
            raise NsError(MALFORMED.format(err)) from None
        try:
            name = check_name((fields.get("name") or [""])[0])
            user_key = asyncssh.import_public_key(" ".join(fields["userkey"]))
            host_key = asyncssh.import_public_key(" ".join(fields["hostkey"]))
        except (KeyError, ValueError, asyncssh.KeyImportError, CAError) as err:
            raise NsError(MALFORMED.format(err)) from None
        try:
            roles = self.ca.redeem_token(parse_token(token)[0], name)
        except CAError as err:
            raise NsError(str(err)) from None
        hosts = list(dict.fromkeys([*fields.get("hostnames", []), peer]))
        user_cert = self.ca.sign_user(user_key, name, roles)
        host_cert = self.ca.sign_host(host_key, hosts)
        lines = [
            "ca " + self.ca.public_key().export_public_key().decode().strip(),
            "usercert " + user_cert.export_certificate().decode().strip(),
            "hostcert " + host_cert.export_certificate().decode().strip(),
            "roles " + quote.join(roles),
        ]
        return ("\n".join(lines) + "\n").encode()


class EnrolmentDir(StaticDir):
    """The whole tree a `join` connection sees; the token was its permission."""

    def check(self, caller, write, what):
        pass


class JoinFile(File):
    writers = readers = frozenset()

    def __init__(self, enrolment: Enrolment):
        self.enrolment = enrolment

    def check(self, caller, write, what):
        pass  # the password (token) was the check

    async def open(self, caller, read, write):
        grant, caller.grant = caller.grant, ()
        if not grant:
            raise NsError("join: this connection has joined already; one join per token")
        return TextHandle(b"", on_write=lambda data: self.enrolment.sign(data, grant[0],
                                                                           caller.peer))
