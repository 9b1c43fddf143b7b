"""The registry's semantics, without a network."""

import pytest
from hypothesis import given, settings, strategies as st

from geryon.ns.tree import NsError, PermissionDenied
from geryon.registry.core import Registry, RegistryError


def reg(*lines, owner="alice"):
    r = Registry()
    for line in lines:
        r.register(line.encode(), owner)
    return r


def test_register_index_find():
    r = reg("tcp!a!1 svc rstyx host a", "tcp!b!2 svc kfs host b", "d0.mbox addr tcp!b!2 persist 1")
    assert r.index() == (b"d0.mbox addr tcp!b!2 persist 1\n"
                         b"tcp!a!1 svc rstyx host a\ntcp!b!2 svc kfs host b\n")
    assert [s.name for s in r.find(b"svc rstyx")] == ["tcp!a!1"]
    assert [s.name for s in r.find(b"svc *")] == ["tcp!a!1", "tcp!b!2"]
    assert [s.name for s in r.find(b"")] == ["d0.mbox", "tcp!a!1", "tcp!b!2"]
    # the name itself is not an attribute
    assert r.find(b"tcp!a!1 *") == []


def test_quoted_values_and_one_value_per_attribute():
    r = reg("svc1 note 'it''s here' note again")
    assert r.services["svc1"].attrs == {"note": "again"}
    r.update("svc1", b"note 'a b'", "alice")
    assert r.services["svc1"].line() == "svc1 note 'a b'"


@pytest.mark.parametrize("line,error", [
    ("bad\x01name a b", "bad character in service name"),
    ("bad/name a b", "bad character in service name"),
    ("new a b", "bad service name"),
    ("index", "bad service name"),
    ("find", "bad service name"),
    ("event", "bad service name"),
    ("''", "bad service name"),
    ("", "bad service name"),
    ("svc a", "odd attribute/value pairs"),
    ("svc 'unclosed", "unbalanced quote"),
])
def test_registration_errors(line, error):
    r = reg()
    with pytest.raises(RegistryError, match=error):
        r.register(line.encode(), "alice")
    assert r.services == {}


def test_duplicate_and_ownership():
    r = reg("svc a 1")
    with pytest.raises(RegistryError, match="duplicate service name"):
        r.register(b"svc b 2", "bob")
    with pytest.raises(PermissionDenied, match="permission denied"):
        r.update("svc", b"a 2", "bob")
    with pytest.raises(PermissionDenied, match="permission denied"):
        r.remove("svc", "bob")
    r.update("svc", b"a 2", "bob", is_admin=True)
    r.remove("svc", "alice")
    assert r.services == {}


def test_changes_are_remembered_and_merged():
    r = reg("a x 1")
    seen = r.seq
    r.update("a", b"x 2", "alice")
    r.register(b"b y 1", "alice")
    r.remove("a", "alice")
    changes = r.changes_since(seen)
    assert [c.text() for c in changes] == ["2 update a x 2\n", "3 add b y 1\n", "4 remove a\n"]
    assert r.changes_since(r.seq) == []


def test_a_reader_too_far_behind_is_told_to_reset():
    r = reg()
    for i in range(5000):
        r.register(f"s{i}".encode(), "alice")
    assert r.changes_since(0) is None
    assert len(r.changes_since(r.seq - 10)) == 10


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_to_new_give_only_our_errors(data):
    r = reg("existing a b")
    try:
        service = r.register(data, "alice")
    except NsError:
        return
    assert r.services[service.name] is service


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_to_find_give_only_our_errors(data):
    r = reg("existing a b", "other c d")
    try:
        found = r.find(data)
    except NsError:
        return
    assert all(s.name in ("existing", "other") for s in found)
