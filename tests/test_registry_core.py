"""The registry's semantics, without a network."""

import dataclasses
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from geryon.errors import LimitExceeded, NsError, PermissionDenied
from geryon.registry.core import (HELD, KEPT, LEFT, LIFE, REMOVED, Limits, Registry,
                                  RegistryError, entry_cost)
from geryon.registry.store import MemoryStore

LIMITS = Limits.from_config()


def reg(*lines, owner="alice", **limits):
    r = Registry(MemoryStore(), dataclasses.replace(LIMITS, **limits))
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
    assert len(r.history) == LIMITS.history


def test_the_history_is_bounded_in_bytes_as_well_as_in_changes():
    r = reg(history_bytes=100_000)
    r.register(b"big v x", "alice")
    for i in range(200):  # each change remembers a line of ~10 kB
        r.update("big", f"v {i:010000}".encode(), "alice")
    assert r.history_bytes <= 100_000
    assert 5 <= len(r.history) <= 10
    assert r.changes_since(0) is None
    assert [c.seq for c in r.changes_since(r.seq - 3)] == [r.seq - 2, r.seq - 1, r.seq]


def test_one_event_read_gets_at_most_max_bytes_but_always_one_change():
    r = reg()
    for i in range(100):
        r.register(f"s{i} pad {'x' * 1000}".encode(), "alice")
    first = r.changes_since(0, max_bytes=10_000)
    assert [c.seq for c in first] == list(range(1, len(first) + 1))
    assert 5 <= len(first) < 10
    assert len(r.changes_since(0, max_bytes=1)) == 1


def test_core_loads_no_asyncio_or_asyncssh():
    code = ("import sys, geryon.registry.core, geryon.registry.lines, geryon.registry.store\n"
            "print(sorted(m for m in ('asyncio', 'asyncssh') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out == "[]\n"


# -- an entry's life

def test_the_life_table_is_complete_for_every_state_an_entry_can_be_in():
    for state in (HELD, KEPT, LEFT):
        for event in ("update", "remove"):
            for persistent in (False, True):
                assert (state, event, persistent) in LIFE
    assert LIFE[HELD, "release", True] == KEPT and LIFE[HELD, "release", False] == REMOVED


def test_held_then_released_live_is_removed_and_persistent_is_kept():
    r = reg()
    live = r.register(b"live a 1", "alice")
    kept = r.register(b"kept a 1 persist 1", "alice")
    assert live.state == kept.state == HELD
    assert r.store.entries() == []  # a held entry is not on disk yet
    r.release(live)
    r.release(kept)
    assert (live.state, kept.state) == (REMOVED, KEPT)
    assert list(r.services) == ["kept"]
    assert [(e.name, e.owner, e.attrs) for e in r.store.entries()] == [
        ("kept", "alice", {"a": "1", "persist": "1"})]
    assert [c.text() for c in r.changes_since(0)] == [
        "1 add live a 1\n", "2 add kept a 1 persist 1\n", "3 remove live\n"]


def test_kept_left_and_kept_again_as_persist_is_written():
    r = reg("e persist 1")
    r.release(r.services["e"])
    r.update("e", b"persist 0", "alice")
    assert r.services["e"].state == LEFT and r.store.entries() == []
    r.update("e", b"persist 1 x 2", "alice")
    assert r.services["e"].state == KEPT and r.store.entries()[0].attrs["x"] == "2"
    r.remove("e", "alice")
    assert r.services == {} and r.store.entries() == []


def test_removed_by_another_while_held_leaves_the_name_to_whoever_takes_it():
    r = reg()
    held = r.register(b"x svc a", "alice")
    r.remove("x", "root", is_admin=True)
    assert held.state == REMOVED
    again = r.register(b"x svc b", "bob")
    with pytest.raises(RegistryError, match="the entry this file made was removed"):
        r.update_held(held, b"svc hijacked")
    r.release(held)  # alice's `new` closes: bob's entry is left alone
    assert r.services["x"] is again and again.line() == "x svc b"


def test_an_entry_restored_from_the_store_is_kept_and_counted():
    store = MemoryStore()
    first = Registry(store, LIMITS)
    e = first.register(b"d0 persist 1 host h", "ops")
    first.release(e)
    second = Registry(store, LIMITS)
    assert second.services["d0"].state == KEPT and second.services["d0"].owner == "ops"
    assert second.held_bytes == {"ops": entry_cost("d0 persist 1 host h")}
    assert second.seq == 0  # restored entries are not announced


# -- limits

def test_a_line_past_the_limit_is_refused_and_names_the_limit():
    r = reg(line_bytes=100)
    with pytest.raises(LimitExceeded, match=r"^registration is 101 bytes; the limit is 100 "
                       r"\(setting registry_line_bytes; raise it in \$GERYON_HOME/config or "
                       r"GERYON_REGISTRY_LINE_BYTES on the server\)$"):
        r.register(b"s v " + b"x" * 97, "alice")
    r.register(b"s v " + b"x" * 90, "alice")
    with pytest.raises(RegistryError, match="^update of s: s's line is 102 bytes; the limit is "
                       "100 .setting registry_line_bytes;"):
        r.update("s", b"w 12345", "alice")
    with pytest.raises(RegistryError, match="^find filter is 101 bytes; the limit is 100"):
        r.find(b"a " + b"x" * 99)
    assert r.services["s"].attrs == {"v": "x" * 90}


def test_too_many_pairs_are_refused():
    r = reg(pairs=3)
    with pytest.raises(RegistryError, match="^registration: the number of s's pairs is 4; the "
                       "limit is 3 .setting registry_pairs;"):
        r.register(b"s a 1 b 2 c 3 d 4", "alice")
    r.register(b"s a 1 b 2 c 3", "alice")
    r.update("s", b"a 9", "alice")  # replacing a value adds no pair
    with pytest.raises(RegistryError, match="limit is 3 .setting registry_pairs;"):
        r.update("s", b"d 4", "alice")


def test_one_identity_may_hold_only_so_much_and_others_are_not_held_back():
    limit = 20 * entry_cost("s00 pad " + "x" * 400)
    r = reg(identity_bytes=limit)
    for i in range(20):
        r.register(f"s{i:02} pad {'x' * 400}".encode(), "greedy")
    with pytest.raises(LimitExceeded, match=r"^registration: the registry memory greedy's "
                       rf"entries take is \d+ bytes; the limit is {limit} \(setting "
                       r"registry_identity_bytes; .*\); or remove some of greedy's entries first$"):
        r.register(b"one more 1", "greedy")
    with pytest.raises(LimitExceeded, match="registry_identity_bytes"):
        r.update("s00", b"more y", "greedy")
    r.register(b"other pad x", "modest")
    r.remove("s00", "greedy")
    r.register(b"one more 1", "greedy")
    assert r.held_bytes["greedy"] <= limit
    for name in [n for n, s in r.services.items() if s.owner == "greedy"]:
        r.remove(name, "greedy")
    assert "greedy" not in r.held_bytes


# -- the index

def test_find_uses_the_index_and_follows_updates_and_removals():
    r = reg("a svc web host h1", "b svc web host h2", "c svc kfs host h1")
    assert [s.name for s in r.find(b"svc web host h1")] == ["a"]
    r.update("a", b"svc kfs", "alice")
    assert [s.name for s in r.find(b"svc web")] == ["b"]
    assert [s.name for s in r.find(b"svc kfs")] == ["a", "c"]
    r.remove("c", "alice")
    assert [s.name for s in r.find(b"host *")] == ["a", "b"]
    assert r.find(b"nosuch *") == [] and r.find(b"svc nosuch") == []
    for name in ("a", "b"):
        r.remove(name, "alice")
    assert r.index_of.values == {} and r.index_of.counts == {}


ops = st.lists(st.tuples(st.sampled_from(["add", "update", "remove"]), st.integers(0, 7),
                         st.dictionaries(st.sampled_from("abc"), st.sampled_from(["1", "2", "*"]),
                                         max_size=3)), max_size=40)


@settings(max_examples=200)
@given(ops, st.dictionaries(st.sampled_from("abcd"), st.sampled_from(["1", "2", "*"]),
                            max_size=3))
def test_find_with_the_index_is_find_by_looking_at_every_entry(steps, filter_):
    from geryon.registry.lines import format_pairs, format_service
    r = reg()
    for op, n, attrs in steps:
        name = f"s{n}"
        try:
            if op == "add":
                r.register(format_service(name, attrs).encode(), "alice")
            elif op == "update":
                r.update(name, format_pairs(attrs).encode(), "alice")
            else:
                r.remove(name, "alice")
        except RegistryError:
            pass
    pairs = list(filter_.items())
    want = sorted(s.name for s in r.services.values() if s.matches(pairs))
    assert [s.name for s in r.find(format_pairs(pairs).encode())] == want


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
