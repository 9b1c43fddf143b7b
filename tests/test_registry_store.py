"""One contract for every Store backend (as huey's test_storage.py does): each test runs
against the memory store and the SQLite store."""

import pytest

from geryon.errors import GeryonError
from geryon.registry.core import Limits, Registry
from geryon.registry.store import Kept, MemoryStore, SQLiteStore

BACKENDS = {"memory": lambda path: MemoryStore(), "sqlite": lambda path: SQLiteStore(path)}


@pytest.fixture(params=sorted(BACKENDS))
def store(request, tmp_path):
    s = BACKENDS[request.param](tmp_path / "state")
    yield s
    s.close()


def test_an_empty_store_holds_nothing(store):
    assert store.entries() == []


def test_saved_entries_come_back_sorted_with_their_owner_and_attribute_order(store):
    store.save(Kept("tcp!h!2", "bob", {"svc": "web", "persist": "1"}))
    store.save(Kept("d0.mbox", "ops", {"persist": "1", "host": "h0", "free": "12"}))
    assert store.entries() == [Kept("d0.mbox", "ops", {"persist": "1", "host": "h0", "free": "12"}),
                               Kept("tcp!h!2", "bob", {"svc": "web", "persist": "1"})]
    assert list(store.entries()[0].attrs) == ["persist", "host", "free"]


def test_saving_again_replaces(store):
    store.save(Kept("d0", "ops", {"persist": "1"}))
    store.save(Kept("d0", "ops", {"persist": "1", "free": "3"}))
    assert store.entries() == [Kept("d0", "ops", {"persist": "1", "free": "3"})]


def test_forget_removes_one_and_forgetting_what_is_not_there_is_nothing(store):
    store.save(Kept("a", "ops", {"persist": "1"}))
    store.save(Kept("b", "ops", {"persist": "1"}))
    store.forget("a")
    store.forget("nosuch")
    assert [e.name for e in store.entries()] == ["b"]


def test_text_that_needs_quoting_is_kept_as_it_is(store):
    attrs = {"note": "St James's", "empty": "", "city": "Z\u00fcrich", "sp": " a  b "}
    store.save(Kept("caf\u00e9", "o'brien", attrs))
    assert store.entries() == [Kept("caf\u00e9", "o'brien", attrs)]


def test_what_the_store_is_given_later_changing_does_not_change_it(store):
    attrs = {"persist": "1"}
    store.save(Kept("a", "ops", attrs))
    attrs["x"] = "y"
    assert store.entries()[0].attrs == {"persist": "1"}


def test_a_registry_keeps_on_its_store_exactly_its_kept_entries(store):
    r = Registry(store, Limits.from_config())
    live = r.register(b"live a 1", "alice")
    kept = r.register(b"kept a 1 persist 1", "alice")
    assert store.entries() == []
    r.release(kept)
    r.release(live)
    assert [e.name for e in store.entries()] == ["kept"]
    r.update("kept", b"b 2", "alice")
    assert store.entries()[0].attrs == {"a": "1", "persist": "1", "b": "2"}
    r.update("kept", b"persist 0", "alice")
    assert store.entries() == []
    r.update("kept", b"persist 1", "alice")
    r.remove("kept", "alice")
    assert store.entries() == []


def test_sqlite_entries_outlive_the_process_that_wrote_them(tmp_path):
    first = SQLiteStore(tmp_path)
    r = Registry(first, Limits.from_config())
    r.release(r.register(b"d0 persist 1 host h0", "ops"))
    first.close()  # a SIGKILL loses nothing more: each change was committed
    second = SQLiteStore(tmp_path)
    again = Registry(second, Limits.from_config())
    assert again.index() == b"d0 persist 1 host h0\n"
    assert again.services["d0"].owner == "ops"
    second.close()


def test_sqlite_state_that_cannot_be_made_says_what_to_do(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(GeryonError, match=r"registry state .*file/registry.db: .*give --state "
                       "a directory of its own"):
        SQLiteStore(tmp_path / "file")
