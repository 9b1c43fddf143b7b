"""The registry's one formatter and parser of service and event lines: whole, fed byte
by byte, with trailing garbage, and as properties (round trips; garbage gives only our
error)."""

import pytest
from hypothesis import given, settings, strategies as st

from geryon.registry.lines import (Change, LineReader, RegistryError, check_name,
                                   format_event, format_service, parse_event, parse_service,
                                   read_events, read_services)

INDEX = (b"d0.mbox host 127.0.0.1 persist 1 note 'St James''s'\n"
         b"tcp!10.0.0.7!40517 svc web note 'a plain web server' empty ''\n"
         + "caf\u00e9 city Z\u00fcrich\n".encode())
SERVICES = [("d0.mbox", {"host": "127.0.0.1", "persist": "1", "note": "St James's"}),
            ("tcp!10.0.0.7!40517", {"svc": "web", "note": "a plain web server", "empty": ""}),
            ("caf\u00e9", {"city": "Z\u00fcrich"})]
EVENTS = (b"1 add d0.mbox host 127.0.0.1 persist 1 note 'St James''s'\n"
          b"2 update d0.mbox host 127.0.0.1 persist 1 note 'St James''s' free 12\n"
          b"3 remove 'it''s'\n"
          b"4 reset\n")
CHANGES = [Change(1, "add", "d0.mbox", "d0.mbox host 127.0.0.1 persist 1 note 'St James''s'"),
           Change(2, "update", "d0.mbox",
                  "d0.mbox host 127.0.0.1 persist 1 note 'St James''s' free 12"),
           Change(3, "remove", "it's", "'it''s'"),
           Change(4, "reset", "", "")]


def feed_in_pieces(parse, data: bytes, size: int) -> list:
    reader = LineReader(parse, "test")
    out = []
    for i in range(0, len(data), size):
        reader.feed(data[i:i + size])
        while (item := reader.next()) is not None:
            out.append(item)
    reader.close()
    return out


def test_a_whole_index_and_its_lines_formatted_back():
    assert read_services(INDEX) == SERVICES
    assert "".join(format_service(n, a) + "\n" for n, a in SERVICES).encode() == INDEX


def test_a_whole_event_text_and_its_lines_formatted_back():
    assert read_events(EVENTS) == CHANGES
    assert "".join(c.text() for c in CHANGES).encode() == EVENTS
    assert [format_event(c) for c in CHANGES] == EVENTS.decode().splitlines()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_fed_in_pieces_of_any_size_even_inside_a_utf8_character(size):
    assert feed_in_pieces(parse_service, INDEX, size) == SERVICES
    assert feed_in_pieces(parse_event, EVENTS, size) == CHANGES


@pytest.mark.parametrize("garbage,error", [
    (b"half a line", "ends in the middle of a line"),
    (b"\xff\xfe\n", "not UTF-8"),
    (b"svc odd\n", "odd attribute/value pairs"),
    (b"'unclosed x y\n", "unbalanced quote"),
    (b"\n", "bad service name ''"),
    (b"bad\x01name a b\n", "bad character in service name"),
])
def test_trailing_garbage_after_good_lines(garbage, error):
    reader = LineReader(parse_service, "index")
    reader.feed(INDEX + garbage)
    got = [reader.next() for _ in SERVICES]
    assert got == SERVICES  # every good line first ...
    with pytest.raises(RegistryError, match=error):  # ... then the garbage, and only ours
        if reader.next() is None:
            reader.close()


@pytest.mark.parametrize("line,error", [
    ("x add a b c", "must start with a change number"),
    ("-1 add a b c", "must start with a change number"),
    ("\u0661 add a b c", "must start with a change number"),  # not an ASCII digit
    ("1 added a b c", "unknown change"),
    ("1", "unknown change"),
    ("1 reset now", "nothing may follow reset"),
    ("1 reset ", "nothing may follow reset"),
    ("1 remove a b", "remove names one service"),
    ("1 remove", "remove names one service"),
    ("1 add", "bad service name ''"),
    ("1 add svc odd", "odd attribute/value pairs"),
    ("1 update 'open x", "unbalanced quote"),
])
def test_bad_event_lines(line, error):
    with pytest.raises(RegistryError, match=error):
        parse_event(line)


@pytest.mark.parametrize("name", [
    "a\x00b", "a\tb", "a\x1bb", "a\x7fb", "a\x85b", "a\x9bb",  # C0, DEL, C1 (NEL, CSI)
    "op\u200bs", "a\u202eb", "a\ufeffb", "a\u2028b", "a\u2029b", "a\u00a0b",  # unseen ones
    "a b", "a/b",
])
def test_service_names_refuse_control_and_invisible_characters(name):
    with pytest.raises(RegistryError, match="^bad character in service name"):
        check_name(name)
    with pytest.raises(RegistryError, match="^bad character in service name"):
        parse_service(format_service(name, {"a": "b"}))


@pytest.mark.parametrize("value", ["a\x1b[2Jb", "a\x85b", "a\u2028b", "tab\there"])
def test_values_refuse_control_characters(value):
    with pytest.raises(RegistryError, match="neither may hold control characters"):
        parse_service(format_service("svc", {"a": value}))


def test_names_may_be_any_other_text():
    for name in ("tcp!127.0.0.1!6675", "d0.mbox", "caf\u00e9", "\u65e5\u672c", "a'b", "x.."):
        assert check_name(name) == name


# -- properties

NAME_CHARS = st.characters(blacklist_categories=("Cc", "Cf", "Zs", "Zl", "Zp", "Cs"),
                           blacklist_characters="/")
WORD_CHARS = st.characters(blacklist_categories=("Cc", "Zl", "Zp", "Cs"))
names = st.text(NAME_CHARS, min_size=1, max_size=20).filter(
    lambda n: n not in ("new", "index", "find", "event", ".", ".."))
attrs = st.dictionaries(st.text(WORD_CHARS, min_size=1, max_size=10),
                        st.text(WORD_CHARS, max_size=15), max_size=6)


@settings(max_examples=300)
@given(names, attrs)
def test_service_lines_round_trip(name, attrs):
    line = format_service(name, attrs)
    assert "\n" not in line
    assert parse_service(line) == (name, attrs)
    assert format_service(*parse_service(line)) == line


@settings(max_examples=200)
@given(st.lists(st.tuples(names, attrs), max_size=8), st.integers(1, 40))
def test_many_lines_fed_in_pieces_round_trip(services, size):
    data = "".join(format_service(n, a) + "\n" for n, a in services).encode()
    assert feed_in_pieces(parse_service, data, size) == services


@settings(max_examples=300)
@given(st.integers(0, 10**12), st.sampled_from(["add", "update", "remove", "reset"]),
       names, attrs)
def test_event_lines_round_trip(seq, op, name, attrs):
    line = {"add": format_service(name, attrs), "update": format_service(name, attrs),
            "remove": format_service(name, {}), "reset": ""}[op]
    change = Change(seq, op, "" if op == "reset" else name, line)
    assert parse_event(format_event(change)) == change


@settings(max_examples=500)
@given(st.binary(max_size=300), st.integers(1, 50))
def test_garbage_gives_only_our_error(data, size):
    for parse in (parse_service, parse_event):
        try:
            feed_in_pieces(parse, data, size)
        except RegistryError:
            pass


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_garbage_text_gives_only_our_error(text):
    for parse in (parse_service, parse_event, check_name):
        try:
            parse(text)
        except RegistryError:
            pass
