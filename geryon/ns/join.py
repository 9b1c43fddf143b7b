"""The joining side of enrolment (see geryon.ns.enrol): dial the registry as user `join`
with the token as password, trusting only the CA named in the token, and store the
certificates it signs."""

import asyncssh

from geryon import dial, quote
from geryon.ns.ca import CAError, Identity, parse_token
from geryon.ns.client import Client, RemoteError


class _Joiner(asyncssh.SSHClient):
    """Keeps the registry's authentication banner: it says why a token was refused."""

    banner = ""

    def auth_banner_received(self, msg, lang):
        self.banner += msg


async def join_cluster(token: str, registry: str, ident: Identity, name: str,
                       hosts: list[str]) -> list[str]:
    """Enrol this machine; return the roles granted."""
    _, ca_key = parse_token(token)
    known = asyncssh.import_known_hosts(
        f"@cert-authority * {ca_key.export_public_key().decode().strip()}\n")
    user_key = ident.new_key("id_ed25519")
    host_key = ident.new_key("host_ed25519")
    addr = dial.parse(registry, "registry")
    joiner = _Joiner()
    try:
        client = await Client.connect(addr, username="join", password=token,
                                      known_hosts=known, client_keys=None, agent_path=None,
                                      config=None, preferred_auth="password",
                                      client_factory=lambda: joiner)
    except RemoteError:
        if joiner.banner:
            raise CAError(f"the registry at {registry} refused the token: "
                          f"{joiner.banner.strip().removeprefix('join refused: ')}") from None
        raise
    try:
        request = "\n".join([
            f"name {quote.quote(name)}",
            "userkey " + user_key.export_public_key().decode().strip(),
            "hostkey " + host_key.export_public_key().decode().strip(),
            "hostnames " + quote.join(hosts),
        ]) + "\n"
        answer = await client.write("/join", request, read_back=True)
    finally:
        await client.close()
    fields = {}
    for line in answer.decode().splitlines():
        key, _, value = line.partition(" ")
        fields[key] = value
    if "usercert" not in fields or "hostcert" not in fields:
        raise CAError(f"the registry at {registry} did not sign our keys: {answer[:200]!r}")
    if asyncssh.import_public_key(fields["ca"]) != ca_key:
        raise CAError("the registry answered with a different CA than the token's")
    ident.trust(ca_key)
    ident.store_certificate("id_ed25519", asyncssh.import_certificate(fields["usercert"]))
    ident.store_certificate("host_ed25519", asyncssh.import_certificate(fields["hostcert"]))
    return quote.split(fields.get("roles", ""))
