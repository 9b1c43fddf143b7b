import pytest
from hypothesis import given, strategies as st

from geryon import dial, quote


@given(st.text())
def test_quote_round_trips_any_string(word):
    assert quote.split(quote.quote(word)) == [word]


@given(st.lists(st.text()))
def test_join_round_trips_any_list(words):
    assert quote.split(quote.join(words)) == words


@given(st.text())
def test_split_of_garbage_gives_words_or_our_error(line):
    try:
        words = quote.split(line)
    except quote.QuoteError as err:
        assert "unbalanced quote" in str(err)
    else:
        assert quote.split(quote.join(words)) == words


def test_quote_examples():
    assert quote.quote("it's") == "'it''s'"
    assert quote.quote("") == "''"
    assert quote.quote("tcp!h!1") == "tcp!h!1"
    assert quote.split("a'b c'd  e") == ["ab cd", "e"]
    with pytest.raises(quote.QuoteError):
        quote.split("a 'b")


@pytest.mark.parametrize("text,default,host,port", [
    ("tcp!gridserver!6678", None, "gridserver", 6678),
    ("net!host!registry", None, "host", 6675),
    ("tcp!*!0", None, "*", 0),
    ("host!rstyx", None, "host", 6668),
    ("host", "infsched", "host", 6678),
    ("tcp!::1!22", None, "::1", 22),
])
def test_dial_strings(text, default, host, port):
    addr = dial.parse(text, default)
    assert (addr.host, addr.port) == (host, port)


@pytest.mark.parametrize("text,message", [
    ("", "empty dial string"),
    ("udp!h!1", "unknown network 'udp'"),
    ("tcp!h!nosuch", "unknown service 'nosuch'"),
    ("tcp!h!70000", "out of range"),
    ("tcp!!1", "names no host"),
    ("a!b!c!d", "too many '!'"),
    ("host", "names no port"),
])
def test_bad_dial_strings(text, message):
    with pytest.raises(dial.DialError, match=message):
        dial.parse(text)


@given(st.text())
def test_dial_garbage_gives_only_our_error(text):
    try:
        addr = dial.parse(text, "registry")
    except dial.DialError:
        return
    assert dial.parse(str(addr)) == addr


@given(st.text())
def test_for_terminal_shows_every_character_printably_and_keeps_plain_text(text):
    from geryon.quote import for_terminal
    shown = for_terminal(text)
    assert all(c.isprintable() or c == " " for c in shown)
    if text.isprintable():
        assert shown == text


def test_for_terminal_escapes_what_would_fool_a_reader():
    from geryon.quote import for_terminal
    assert for_terminal("op\u200bs") == "op\\u200bs"
    assert for_terminal("\x1b[2Jclear") == "\\x1b[2Jclear"
    assert for_terminal("\u202eexe.txt") == "\\u202eexe.txt"
    assert for_terminal("tab\there\n") == "tab\\there\\n"
