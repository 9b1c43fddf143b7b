"""ndb: the attrdb format (parse, format, round trips, garbage), Database (database= file
lists, re-reading changed files) and `geryon ndb query` (exact output and exit status)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from geryon.cli import geryon
from geryon.ndb import (
    Database,
    Entry,
    NdbError,
    database_files,
    format_entry,
    format_line,
    parse,
    quote,
)

# REFERENCE.md's cluster file, as caerwyn wrote it.
CLUSTER = """\
name=d0.mbox kfs
\tmaster=host0!chunk0
\treplica=d0.replica
name=d0.replica kfs
\tmaster=host1!chunk0 replica
"""

# The example of Inferno's attrdb(6): quoting, doubled quotes, bare and `attr=` attributes,
# and pairs that bind by sharing a line.
PEOPLE = """\
name='Paul Wilson' business company='Fruitbat Villas Ltd'
   title='Key Grip'
   address='39 Willis Street, York' tel='+44 1904 20927'
   address='On the road' tel='+44 7904 169 704'
name='James Mason' personal=
   address='10 St James''s, East Grinstead' tel='01342 7674'
"""


# --- the format --------------------------------------------------------------------------

def test_parse_reference_cluster():
    d0, replica = parse(CLUSTER, source="cluster")
    assert d0.lines == (
        (("name", "d0.mbox"), ("kfs", "")),
        (("master", "host0!chunk0"),),
        (("replica", "d0.replica"),),
    )
    assert (d0.source, d0.lineno, replica.lineno) == ("cluster", 1, 4)
    assert replica.getall("replica") == [""]
    assert d0.get("master") == "host0!chunk0" and d0.get("absent") is None
    assert d0.has("kfs") and d0.has("kfs", "") and not d0.has("kfs", "x")
    assert list(d0)[:2] == [("name", "d0.mbox"), ("kfs", "")] and len(d0) == 4


def test_parse_attrdb_example_quotes_and_bare_attributes():
    paul, james = parse(PEOPLE)
    assert paul.get("name") == "Paul Wilson"
    assert paul.get("business") == ""
    assert paul.getall("tel") == ["+44 1904 20927", "+44 7904 169 704"]
    assert james.lines[0] == (("name", "James Mason"), ("personal", ""))
    assert james.get("address") == "10 St James's, East Grinstead"


def test_pairs_bind_tighter_on_their_line():
    paul, _ = parse(PEOPLE)
    assert paul.findbyattr("address", "On the road", "tel") == [
        "+44 7904 169 704", "+44 1904 20927"]
    assert paul.findbyattr("name", "Paul Wilson", "tel") == [
        "+44 1904 20927", "+44 7904 169 704"]
    assert paul.findbyattr("name", "Paul Wilson", "nothing") == []


def test_comments_blank_lines_and_quoting_details():
    text = (
        "# a comment at column 0\n"
        "a=1 b=\"two words\" c='it''s' d=\"say \"\"hi\"\"\"  # trailing comment\n"
        "\n"
        "# neither a blank line nor a comment line ends an entry\n"
        "\te=x'y z'w f=' # = ' g=\r\n"
        "h=\"\" i\n"
    )
    first, second = parse(text)
    assert first.lines == (
        (("a", "1"), ("b", "two words"), ("c", "it's"), ("d", 'say "hi"')),
        (("e", "xy zw"), ("f", " # = "), ("g", "")),
    )
    assert second.lines == ((("h", ""), ("i", "")),)


def test_attr_equals_then_blank_is_empty_not_the_next_word():
    # Inferno's parser reads `a= b` as a=b; attrdb(6) says `a=` has no value.  We follow
    # the manual.
    assert parse("a= b\n")[0].lines == ((("a", ""), ("b", "")),)


def test_empty_text_and_comment_only_text_have_no_entries():
    assert parse("") == [] and parse("# nothing\n\n   \n\t# indented comment\n") == []


@pytest.mark.parametrize("text, message", [
    ("name=d0.mbox kfs\n\tmaster='node0!chunk0\n",
     "f:2: unterminated quote in value of 'master'; close the quote"),
    ("'name=x\n", "f:1: unterminated quote in an attribute name; close the quote"),
    ("a=b=c\n", "f:1: value of 'a' holds an unquoted '='; quote the value, as in a='...'"),
    ("x\n=b\n", "f:2: pair '=b' has no attribute name; write attr=value"),
    ("x ''\n", "f:1: pair \"''\" has no attribute name; write attr=value"),
    ("  a=b\nc=d\n", "f:1: indented line before the first entry; start an entry at column 0 "
                     "or remove the indent"),
])
def test_errors_say_where_what_and_how_to_fix(text, message):
    with pytest.raises(NdbError) as err:
        parse(text, source="f")
    assert str(err.value) == message
    assert err.value.source == "f"


def test_format_entry_and_format_line():
    entry = Entry([[("name", "d0.mbox"), ("kfs", "")], [("master", "node0!chunk0")],
                   [("note", "two words"), ("odd", "a=b#c\"d'e"), ("empty", "")]])
    assert format_entry(entry) == (
        "name=d0.mbox kfs\n"
        "\tmaster=node0!chunk0\n"
        "\tnote='two words' odd='a=b#c\"d''e' empty\n")
    assert format_line(entry) == (
        "name=d0.mbox kfs='' master=node0!chunk0 note='two words' "
        "odd='a=b#c\"d''e' empty=''")


def test_quote_uses_inferno_quoting_plus_ndb_specials():
    assert [quote(w) for w in ["plain", "", "a b", "it's", "a=b", "#", '"']] == [
        "plain", "''", "'a b'", "'it''s'", "'a=b'", "'#'", "'\"'"]


def test_what_cannot_be_written_is_refused():
    with pytest.raises(NdbError, match="holds a line break"):
        format_entry(Entry([[("a", "two\nlines")]]))
    with pytest.raises(NdbError, match="empty attribute name"):
        Entry([[("", "x")]])
    with pytest.raises(NdbError, match="at least one pair"):
        Entry([[]])


# --- properties --------------------------------------------------------------------------

one_line = st.text(st.characters(exclude_characters="\n"))
tricky = st.text(st.sampled_from(list(" \t\r#'\"=ab\\\x00é")))
attrs = st.one_of(one_line, tricky).filter(bool)
values = st.one_of(one_line, tricky)
entries = st.lists(
    st.builds(Entry, st.lists(st.lists(st.tuples(attrs, values), min_size=1, max_size=4),
                              min_size=1, max_size=4)),
    max_size=5)


@given(entries)
def test_format_then_parse_gives_the_entries_back(es):
    assert parse("".join(format_entry(e) for e in es)) == es


@given(entries)
def test_format_line_then_parse_gives_every_pair_on_one_line(es):
    for e in es:
        assert parse(format_line(e)) == [Entry([list(e)])]


garbage = st.one_of(st.text(), st.text(st.sampled_from(list(" \t\r\n#'\"=ab\\"))))


@given(garbage)
def test_garbage_text_only_raises_ndb_error_and_what_parses_round_trips(text):
    try:
        es = parse(text)
    except NdbError:
        return
    assert parse("".join(format_entry(e) for e in es)) == es


@settings(max_examples=50)
@given(st.binary())
def test_garbage_files_only_raise_ndb_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("garbage") / "db"
    path.write_bytes(data)
    try:
        Database(path).query_all("a")
    except NdbError:
        pass


def test_bad_utf8_names_file_and_line(tmp_path):
    (tmp_path / "db").write_bytes(b"a=1\nb=\xff\n")
    with pytest.raises(NdbError) as err:
        Database(tmp_path / "db").entries()
    assert str(err.value) == f"{tmp_path}/db:2: byte 6 is not UTF-8; ndb files are UTF-8 text"


# --- Database ----------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_query_and_lookup(tmp_path):
    db = Database(write(tmp_path / "cluster", CLUSTER))
    assert db.query("name", "d0.replica").get("master") == "host1!chunk0"
    assert db.query("name", "nope") is None
    assert [e.get("name") for e in db.query_all("kfs", "")] == ["d0.mbox", "d0.replica"]
    assert db.lookup("name", "d0.mbox", "master") == "host0!chunk0"
    assert db.lookup("name", "d0.mbox", "absent") is None
    assert db.lookup_all("kfs", "", "name") == ["d0.mbox", "d0.replica"]


def test_database_entry_lists_files_relative_to_the_first(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "disks", "name=d1.mbox kfs\n")
    write(tmp_path / "cpus", "name=d0.cpu kfs\n")
    root = write(tmp_path / "local",
                 "database=\n\tfile=sub/disks\n\tfile=local\n\tfile=cpus\n\tfile=./cpus\n"
                 "name=d0.mbox kfs\n")
    db = Database(root)
    assert db.files() == [str(tmp_path / "sub/disks"), str(root), str(tmp_path / "cpus")]
    assert db.lookup_all("kfs", "", "name") == ["d1.mbox", "d0.mbox", "d0.cpu"]
    assert database_files(parse(root.read_text())) == ["sub/disks", "local", "cpus", "./cpus"]


def test_first_file_comes_first_when_it_does_not_list_itself(tmp_path):
    write(tmp_path / "more", "name=b\n")
    root = write(tmp_path / "db", "database= file=more\nname=a\n")
    assert [e.get("name") for e in Database(root).query_all("name")] == ["a", "b"]


def test_missing_listed_file_is_named(tmp_path):
    root = write(tmp_path / "db", "database=\n\tfile=gone\n")
    with pytest.raises(NdbError) as err:
        Database(root).entries()
    assert str(err.value) == (f"ndb file {tmp_path}/gone does not exist; it is listed by the "
                              f"database entry in {root}; create it or remove its file= pair")


def test_database_rereads_files_that_change(tmp_path):
    root = write(tmp_path / "db", "database=\n\tfile=db\n\tfile=more\nname=a\n")
    more = write(tmp_path / "more", "name=b\n")
    db = Database(root)
    assert db.lookup_all("name", None, "name") == ["a", "b"]

    with open(more, "a") as f:  # grows in place
        f.write("name=c\n")
    assert db.lookup_all("name", None, "name") == ["a", "b", "c"]

    before = os.stat(more)
    with open(more, "r+") as f:  # same size, same inode; only the times move
        f.write("name=d")
    os.utime(more, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert db.lookup_all("name", None, "name") == ["a", "d", "c"]

    tmp = write(tmp_path / "db.new", "name=z\n")  # replaced: a new inode, no more includes
    os.replace(tmp, root)
    assert db.files() == [str(root)]
    assert db.lookup_all("name", None, "name") == ["z"]


def test_unchanged_files_are_not_parsed_again(tmp_path):
    db = Database(write(tmp_path / "db", CLUSTER))
    first = db.entries()
    assert all(a is b for a, b in zip(first, db.entries()))


# --- geryon ndb query --------------------------------------------------------------------

@pytest.fixture
def cluster(tmp_path):
    return str(write(tmp_path / "cluster", CLUSTER))


@pytest.fixture
def people(tmp_path):
    return str(write(tmp_path / "people", PEOPLE))


def ndbquery(*args):
    result = CliRunner().invoke(geryon, ["ndb", "query", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("args, out", [
    (["name", "d0.mbox"], "name=d0.mbox kfs='' master=host0!chunk0 replica=d0.replica\n"),
    (["kfs"], "name=d0.mbox kfs='' master=host0!chunk0 replica=d0.replica\n"),
    (["-a", "kfs"], "name=d0.mbox kfs='' master=host0!chunk0 replica=d0.replica\n"
                    "name=d0.replica kfs='' master=host1!chunk0 replica=''\n"),
    (["replica", ""], "name=d0.replica kfs='' master=host1!chunk0 replica=''\n"),
    (["name", "d0.mbox", "master"], "host0!chunk0\n"),
    (["name", "d0.mbox", "replica"], "d0.replica\n"),
    (["name", "d0.replica", "replica"], "''\n"),
    (["-a", "kfs", "", "name"], "d0.mbox\nd0.replica\n"),
    (["kfs", "", "master"], "host0!chunk0\n"),
    (["-a", "kfs", "", "master"], "host0!chunk0\nhost1!chunk0\n"),
])
def test_query_reference_cluster(cluster, args, out):
    assert ndbquery("-f", cluster, *args) == (0, out, "")


@pytest.mark.parametrize("args, out", [
    (["address", "On the road"],
     "name='Paul Wilson' business='' company='Fruitbat Villas Ltd' title='Key Grip' "
     "address='39 Willis Street, York' tel='+44 1904 20927' address='On the road' "
     "tel='+44 7904 169 704'\n"),
    (["name", "James Mason"],
     "name='James Mason' personal='' address='10 St James''s, East Grinstead' "
     "tel='01342 7674'\n"),
    (["address", "On the road", "tel"], "'+44 7904 169 704'\n"),
    (["name", "Paul Wilson", "tel"], "'+44 1904 20927'\n"),
    (["-a", "address", "On the road", "tel"], "'+44 7904 169 704'\n'+44 1904 20927'\n"),
    (["-a", "tel", "01342 7674", "name"], "'James Mason'\n"),
])
def test_query_attrdb_example(people, args, out):
    assert ndbquery("-f", people, *args) == (0, out, "")


def test_no_match_is_silent_with_status_1(cluster):
    assert ndbquery("-f", cluster, "name", "d9.mbox") == (1, "", "")
    assert ndbquery("-f", cluster, "-a", "name", "d0.mbox", "absent") == (1, "", "")
    assert ndbquery("-f", cluster, "kfs", "x") == (1, "", "")


def test_query_follows_database_includes_and_changes(tmp_path):
    root = write(tmp_path / "local", "database=\n\tfile=local\n\tfile=cluster\n")
    write(tmp_path / "cluster", CLUSTER)
    assert ndbquery("-f", str(root), "-a", "kfs", "", "name") == (
        0, "d0.mbox\nd0.replica\n", "")
    with open(tmp_path / "cluster", "a") as f:
        f.write("name=d1.mbox kfs\n\tmaster=host2!chunk3\n")
    assert ndbquery("-f", str(root), "name", "d1.mbox", "master") == (0, "host2!chunk3\n", "")


def test_unreadable_file_is_status_2_with_a_message(tmp_path):
    bad = write(tmp_path / "bad", "name=d0.mbox kfs\n\tmaster='node0\n")
    assert ndbquery("-f", str(bad), "kfs") == (
        2, "", f"geryon ndb query: {bad}:2: unterminated quote in value of 'master'; "
               "close the quote\n")
    code, out, err = ndbquery("-f", str(tmp_path / "none"), "kfs")
    assert (code, out) == (2, "") and "does not exist; create it" in err


@pytest.mark.parametrize("args", [["ndb", "-h"], ["ndb", "query", "-h"]])
def test_help_shows_an_example(args):
    result = CliRunner().invoke(geryon, args)
    assert result.exit_code == 0
    assert "Example:\n    " in result.stdout and "geryon ndb query name d0.mbox" in result.stdout


def test_repo_cluster_file_names_the_demo_disks():
    db = Database(Path(__file__).parent.parent / "ndb" / "cluster")
    names = db.lookup_all("kfs", "", "name")
    assert {"d0.mbox", "d1.mbox", "d2.mbox"} <= set(names)
    for name in names:
        host, chunk = db.lookup("name", name, "master").split("!")
        assert host in {"node0", "node1", "node2"} and chunk.startswith("chunk")
    replica = db.lookup("name", "d0.mbox", "replica")
    assert db.query("name", replica).has("replica", "")


def test_real_command_exit_status(cluster):
    exe = Path(sys.executable).with_name("geryon")
    run = [str(exe), "ndb", "query", "-f", cluster]
    found = subprocess.run([*run, "name", "d0.mbox", "master"], capture_output=True, text=True)
    assert (found.returncode, found.stdout, found.stderr) == (0, "host0!chunk0\n", "")
    none = subprocess.run([*run, "name", "d9.mbox"], capture_output=True, text=True)
    assert (none.returncode, none.stdout, none.stderr) == (1, "", "")
    usage = subprocess.run([str(exe), "ndb", "query"], capture_output=True, text=True)
    assert usage.returncode == 2 and "Missing argument 'ATTR'" in usage.stderr
