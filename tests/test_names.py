"""Identities are printable ASCII from a documented set; what the CA refuses, and how."""

import subprocess

import pytest

from geryon.roles import IDENTITY_CHARS, identity_problem
from support import geryon


@pytest.mark.parametrize("name", ["alice", "node3", "a.b-c_d@e+f", "x" * 64])
def test_plain_names_are_identities(name):
    assert identity_problem(name) is None


@pytest.mark.parametrize("name, why", [
    ("", "empty"), ("op\u200bs", "'\\u200b'"), ("tab\there", "'\\t'"), ("new\nline", "'\\n'"),
    ("esc\x1b[2J", "'\\x1b'"), ("a b", "' '"), ("quo'te", "\"'\""), ("sl/ash", "'/'"),
    ("-flag", "starts with '-'"), (".hidden", "starts with '.'"), ("x" * 65, "limit is 64"),
    ("admin", "role name"), ("caf\u00e9", "'\\xe9'")])
def test_other_names_are_refused_saying_why(name, why):
    problem = identity_problem(name)
    assert problem is not None and why in problem


def test_the_set_is_printable_ascii_only():
    assert all(33 <= ord(c) < 127 for c in IDENTITY_CHARS)


def test_ca_sign_refuses_an_invisible_character_and_a_bad_validity(home, tmp_path):
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    sneaky = geryon(home, "ca", "sign", "--user", "op\u200bs", f"{key}.pub")
    assert sneaky.returncode == 1 and "'\\u200b'" in sneaky.stderr
    assert "Traceback" not in sneaky.stderr
    for days in ("-1", "0", "999999"):
        bad = geryon(home, "ca", "sign", "--days", days, "--user", "bob", f"{key}.pub")
        assert bad.returncode == 2 and "--days" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "k-cert.pub").exists()
    ok = geryon(home, "ca", "sign", "--days", "1", "--user", "bob", f"{key}.pub", check=True)
    assert ok.stdout.strip().endswith("k-cert.pub")


def test_ca_token_refuses_a_ttl_out_of_range(home):
    bad = geryon(home, "ca", "token", "--ttl", "-5")
    assert bad.returncode == 2 and "--ttl" in bad.stderr
