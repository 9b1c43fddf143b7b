"""S-expressions (sexprs(6)): the man page's examples, every string form, the errors with
their offsets, and properties: both forms round-trip, and garbage only ever raises
SExprError."""

import base64

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from geryon.errors import GeryonError
from geryon.owen.sexpr import (MAX_DEPTH, Atom, List, SExprError, advanced, canonical,
                               parse, parse_all)


def L(*items):
    return List(tuple(Atom(i) if isinstance(i, bytes) else i for i in items))


def test_the_man_pages_canonical_example():
    x = parse(b"(12:hello world!(5:inner0:))")
    assert x == L(b"hello world!", L(b"inner", b""))
    assert canonical(x) == b"(12:hello world!(5:inner0:))"


def test_the_man_pages_advanced_example():
    text = b'(hello-world\n    (* "3" "5.6")\n    (best-of-3 (5:inner0:)))'
    x = parse(text)
    assert x == L(b"hello-world", L(b"*", b"3", b"5.6"), L(b"best-of-3", L(b"inner", b"")))
    assert canonical(x) == b"(11:hello-world(1:*1:33:5.6)(9:best-of-3(5:inner0:)))"
    assert advanced(x) == b'(hello-world (* "3" "5.6") (best-of-3 (inner "")))'
    assert x.op == "hello-world" and len(x.args) == 2


@pytest.mark.parametrize("text,data", [
    (b"abc", b"abc"),
    (b"-./_:*+=A9", b"-./_:*+=A9"),
    (b"3:a b", b"a b"),
    (b"0:", b""),
    (b'""', b""),
    (b'"tab\\there"', b"tab\there"),
    (b'"\\b\\f\\n\\r\\t\\v\\\\\\\'\\""', b"\b\f\n\r\t\v\\'\""),
    (b'"\\101\\x42\\377"', b"AB\xff"),
    (b'"one \\\ntwo \\\r\nthree"', b"one two three"),
    (b'4"a\\tbc"', b"a\tbc"),
    (b"#616263#", b"abc"),
    (b"# 61 62\n63 #", b"abc"),
    (b"3#616263#", b"abc"),
    (b"|YWJj|", b"abc"),
    (b"| YW\nJj |", b"abc"),
    (b"3|YWJj|", b"abc"),
    (b"|YWI|", b"ab"),                      # padding left off
    (b"10", b"10"),                         # bare numbers, a kindness
    (b"5.6", b"5.6"),
    (b"007", b"007"),
])
def test_every_string_form(text, data):
    assert parse(text) == Atom(data)


def test_display_hints_and_braces():
    assert parse(b"[4:text]5:hello") == Atom(b"hello", b"text")
    assert parse(b'[ text/plain ] "hi"') == Atom(b"hi", b"text/plain")
    inner = b"(range 10)"
    assert parse(b"{" + base64.b64encode(inner) + b"}") == L(b"range", b"10")
    assert parse(b"(a {" + base64.b64encode(b"(b c)") + b"} d)") == \
        L(b"a", L(b"b", b"c"), b"d")


def test_bare_numbers_end_at_delimiters():
    assert parse(b"(range 10)") == L(b"range", b"10")
    assert parse(b"(10(x))") == L(b"10", L(b"x"))
    assert parse(b"(1 2 3)") == L(b"1", b"2", b"3")
    assert parse(b"(-3 +4)") == L(b"-3", b"+4")


def test_parse_all_reads_every_expression():
    assert parse_all(b" a (b) 1:c\n") == [Atom(b"a"), L(b"b"), Atom(b"c")]
    assert parse_all(b"") == [] and parse_all(b" \n") == []


@pytest.mark.parametrize("text,offset,words", [
    (b"", 0, "the text is empty"),
    (b"   ", 3, "only white space"),
    (b"(a b", 4, "the list opened at byte 0 is not closed"),
    (b"(a))", 3, "after the end of the S-expression"),
    (b"a b", 2, "after the end"),
    (b")", 0, "')' closes no list"),
    (b"3x", 0, "a token cannot start with a digit"),
    (b"5:abc", 1, "says 5 bytes but only 3 follow"),
    (b"03:abc", 0, "leading zero"),
    (b"1234567890123456789012:x", 0, "too long"),
    (b'"abc', 0, "quoted string is not closed"),
    (b'"a\\qb"', 2, "unknown escape \\q"),
    (b'"\\12"', 1, "three octal digits"),
    (b'"\\400"', 1, "three octal digits"),
    (b'"\\x4"', 1, "two hex digits"),
    (b'4"abc"', 1, "is 3 bytes but its length prefix says 4"),
    (b"#abc#", 0, "odd number of digits"),
    (b"#ab", 0, "'#' (hex) is not closed"),
    (b"#ag#", 2, "'g' in #hex#"),
    (b"|ab!c|", 3, "'!' in |base64|"),
    (b"|a=bc|", 0, "'=' in the middle"),
    (b"|a|", 0, "does not decode"),
    (b"|YWJj", 0, "not closed"),
    (b"{YWJj", 0, "'{' is not closed"),
    (b"{KGE=}", 0, "in the {base64} expression, at its byte 2"),
    (b"[hint", 5, "display hint opened at byte 0 is not closed"),
    (b"[hint]", 6, "must be followed by the string"),
    (b"(\x01)", 1, "byte 0x01 cannot start a string"),
])
def test_errors_say_what_and_where(text, offset, words):
    with pytest.raises(SExprError) as err:
        parse(text)
    assert err.value.offset == offset
    assert words in str(err.value)
    assert str(err.value).startswith(f"bad S-expression at byte {offset}: ")
    assert isinstance(err.value, GeryonError)


def test_nesting_is_bounded_without_recursion():
    deep = b"(" * (MAX_DEPTH - 1) + b")" * (MAX_DEPTH - 1)
    assert canonical(parse(deep)) == deep
    with pytest.raises(SExprError, match="MAX_DEPTH"):
        parse(b"(" * (MAX_DEPTH + 1) + b")" * (MAX_DEPTH + 1))
    with pytest.raises(SExprError, match="MAX_DEPTH"):
        parse(b"(" * 100_000)
    # braces count towards the depth too
    text = b"(" * (MAX_DEPTH - 1) + b"{" + base64.b64encode(b"(a)") + b"}" + \
        b")" * (MAX_DEPTH - 1)
    with pytest.raises(SExprError, match="MAX_DEPTH"):
        parse(text)


def test_advanced_chooses_readable_forms():
    assert advanced(Atom(b"tok-en")) == b"tok-en"
    assert advanced(Atom(b"10")) == b'"10"'
    assert advanced(Atom(b"")) == b'""'
    assert advanced(Atom(b'say "hi"\n')) == b'"say \\"hi\\"\\n"'
    assert advanced(Atom("Zürich".encode())) == '"Zürich"'.encode()
    assert advanced(Atom(b"\x00\xff")) == b"#00ff#"
    assert advanced(Atom(bytes(range(40)))) == b"|" + base64.b64encode(bytes(range(40))) + b"|"
    assert advanced(Atom(b"x", b"text/plain")) == b"[text/plain]x"
    assert advanced(L()) == b"()"


def test_formatters_refuse_what_is_not_an_sexpr():
    with pytest.raises(TypeError):
        canonical(List(("not an atom",)))


# -- properties ---------------------------------------------------------------------------

atoms = st.builds(Atom, st.binary(max_size=24), st.none() | st.binary(max_size=8)) | \
    st.builds(Atom, st.text(max_size=12).map(str.encode))
sexprs = st.recursive(atoms, lambda children: st.lists(children, max_size=5).map(
    lambda items: List(tuple(items))), max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(sexprs)
def test_canonical_round_trips(x):
    assert parse(canonical(x)) == x


@settings(max_examples=150, deadline=None)
@given(sexprs)
def test_advanced_round_trips_and_is_one_line(x):
    text = advanced(x)
    assert parse(text) == x
    assert b"\n" not in text


@settings(max_examples=100, deadline=None)
@given(sexprs)
def test_braces_stand_for_any_expression(x):
    assert parse(b"{" + base64.b64encode(advanced(x)) + b"}") == x
    assert parse(b"{" + base64.b64encode(canonical(x)) + b"}") == x


@settings(max_examples=100, deadline=None)
@given(st.lists(sexprs, max_size=4))
def test_parse_all_reads_back_what_was_written(xs):
    assert parse_all(b"\n".join(advanced(x) for x in xs)) == xs
    assert parse_all(b"".join(b"(" + canonical(x) + b")" for x in xs)) == \
        [List((x,)) for x in xs]


@settings(max_examples=100, deadline=None)
@given(sexprs, st.binary(min_size=1, max_size=8).filter(lambda g: g.strip(b" \t\r\n")))
def test_trailing_garbage_is_refused(x, garbage):
    text = canonical(x)
    assert parse(text + b" \n") == x
    if isinstance(x, List):     # a string could grow into the garbage (ab + c = abc)
        with pytest.raises(SExprError, match="after the end|not closed|cannot start"):
            parse(text + garbage)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_garbage_only_raises_sexpr_error(data):
    try:
        x = parse(data)
    except SExprError:
        return
    assert parse(canonical(x)) == x


@settings(max_examples=150, deadline=None)
@given(sexprs, st.data())
def test_mangled_expressions_only_raise_sexpr_error(x, data):
    text = bytearray(advanced(x))
    for _ in range(data.draw(st.integers(1, 3))):
        if not text:
            break
        i = data.draw(st.integers(0, len(text) - 1))
        text[i] = data.draw(st.sampled_from(b'()[]{}|#":\\0123 a\x00\xff='))
    try:
        parse_all(bytes(text))
    except SExprError:
        pass
