"""Expression parser: examples plus hypothesis properties (equivalent expressions, same weights)."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.errors import InvalidInput
from registry.spec import Ref, parse_expression, reduce_expression

A, B, C = Ref("acme", "a"), Ref("acme", "b-c"), Ref("acme", "toxic", version=2)


def test_product_example():
    got = parse_expression("0.5 * acme/math + 0.5 * acme/medicine - 0.3 * acme/toxic@2")
    assert got == [
        (Ref("acme", "math"), 0.5),
        (Ref("acme", "medicine"), 0.5),
        (Ref("acme", "toxic", version=2), -0.3),
    ]


def test_parentheses_and_scalar_arithmetic():
    got = dict(parse_expression("0.5 * (acme/a + acme/b-c) - acme/toxic@2 + 2 * 0.25 * acme/a"))
    assert got == {A: 1.0, B: 0.5, C: -1.0}


def test_selectors():
    got = [r for r, _ in parse_expression("acme/a@3 + acme/a@prod + acme/a@sha256:ab12cd + acme/a@latest")]
    assert got == [
        Ref("acme", "a", version=3),
        Ref("acme", "a", alias="prod"),
        Ref("acme", "a", sha256_prefix="ab12cd"),
        Ref("acme", "a"),
    ]
    assert str(got[2]) == "acme/a@sha256:ab12cd" and got[1].selector == "prod"


def test_names_are_greedy_so_minus_needs_spaces():
    assert parse_expression("acme/a-b") == [(Ref("acme", "a-b"), 1.0)]
    assert dict(parse_expression("acme/a - acme/b-c")) == {A: 1.0, B: -1.0}


def test_negation_and_unary_plus():
    assert parse_expression("-acme/a") == [(A, -1.0)]
    assert parse_expression("+(-(-acme/a))") == [(A, 1.0)]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty expression"),
        ("0.5", "a number alone"),
        ("acme/a * acme/b-c", "cannot multiply two adapters"),
        ("acme/a + 1", "cannot add a number"),
        ("(acme/a", "expected ')'"),
        ("acme/a +", "unexpected end"),
        ("acme/a acme/b", "unexpected"),
        ("Acme/a", "unexpected character 'A'"),
        ("acme/a@0", "versions run from 1"),
        ("acme/a/b", "malformed reference"),
        ("acme/a - acme/a", "every weight reduces to 0"),
        ("2 / acme/a", "unexpected character '/'"),
    ],
)
def test_errors_name_the_problem(text, fragment):
    with pytest.raises(InvalidInput, match=re.escape(fragment)) as err:
        parse_expression(text)
    assert err.value.field == "expression"


# ---- properties -------------------------------------------------------------------------------

REFS = [A, B, C, Ref("ns.x", "m_1", alias="best"), Ref("z", "w", sha256_prefix="0f1e2d")]


def expected(items) -> dict[Ref, Fraction]:
    out: dict[Ref, Fraction] = {}
    for ref, c in items:
        out[ref] = out.get(ref, Fraction(0)) + c
    return out


decimals = st.sampled_from([Fraction(k, 8) for k in range(-40, 41)])
decimal_combos = st.lists(st.tuples(st.sampled_from(REFS), decimals), min_size=1, max_size=6)


def spell(c: Fraction) -> str:
    return repr(float(c))  # multiples of 1/8 are exact in binary and in decimal


@settings(max_examples=150, deadline=None)
@given(decimal_combos)
def test_flat_sum_reduces_to_summed_weights(items):
    text = " + ".join(f"{spell(c)} * {r}" for r, c in items)
    assert reduce_expression(text) == expected(items)


@settings(max_examples=150, deadline=None)
@given(decimal_combos, decimals.filter(lambda f: f != 0))
def test_distributing_a_scalar_gives_the_same_weights(items, k):
    inner = " + ".join(f"{spell(c)} * {r}" for r, c in items)
    distributed = " + ".join(f"{spell(k * c)} * {r}" for r, c in items)
    assert reduce_expression(f"{spell(k)} * ({inner})") == reduce_expression(distributed)


@settings(max_examples=150, deadline=None)
@given(decimal_combos, st.randoms(use_true_random=False))
def test_order_and_subtraction_spelling_do_not_matter(items, rnd):
    shuffled = list(items)
    rnd.shuffle(shuffled)
    text = ""
    for i, (r, c) in enumerate(shuffled):
        # write negative weights as binary minus half of the time
        if c < 0 and rnd.random() < 0.5:
            text += f" - {spell(-c)} * {r}" if i else f"-{spell(-c)} * {r}"
        else:
            text += (" + " if i else "") + f"{spell(c)} * {r}"
    assert reduce_expression(text) == expected(items)


@settings(max_examples=100, deadline=None)
@given(decimal_combos)
def test_parse_expression_drops_only_cancelled_refs(items):
    text = " + ".join(f"{spell(c)} * {r}" for r, c in items)
    exact = expected(items)
    if all(v == 0 for v in exact.values()):
        with pytest.raises(InvalidInput):
            parse_expression(text)
    else:
        assert parse_expression(text) == [(r, float(v)) for r, v in exact.items() if v != 0]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(REFS))
def test_ref_round_trips_through_str(ref):
    assert Ref.parse(str(ref)) == ref


# Random expression trees: rendered with parentheses, unary minus and scalar products on either
# side, evaluated independently here with Fractions.
leaf_refs = st.sampled_from(REFS).map(lambda r: (str(r), {r: Fraction(1)}))


def _combine(children):
    def add(pair, sign):
        (ta, wa), (tb, wb) = pair
        out = dict(wa)
        for r, c in wb.items():
            out[r] = out.get(r, Fraction(0)) + sign * c
        return (f"({ta} {'+' if sign > 0 else '-'} {tb})", out)

    def scale(item, k, left):
        text, w = item
        rendered = f"{spell(k)} * {text}" if left else f"{text} * {spell(k)}"
        return (f"({rendered})", {r: c * k for r, c in w.items()})

    return st.one_of(
        st.tuples(children, children).map(lambda p: add(p, 1)),
        st.tuples(children, children).map(lambda p: add(p, -1)),
        children.map(lambda it: (f"-{it[0]}", {r: -c for r, c in it[1].items()})),
        st.tuples(children, decimals, st.booleans()).map(lambda t: scale(t[0], t[1], t[2])),
    )


trees = st.recursive(leaf_refs, _combine, max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(trees)
def test_random_trees_reduce_to_their_exact_weights(tree):
    text, weights = tree
    assert reduce_expression(text) == weights


def test_first_appearance_order_survives_merging_a_small_sum_into_a_large_one():
    """Sums merge the smaller side into the larger (registry/spec/expression.py); the weights still
    come out in the order the refs first appear in the text."""
    got = parse_expression("acme/c + 2 * (acme/a + acme/b + acme/d) - 0.5 * acme/c + acme/e")
    assert [(str(r), w) for r, w in got] == [
        ("acme/c", 0.5),
        ("acme/a", 2.0),
        ("acme/b", 2.0),
        ("acme/d", 2.0),
        ("acme/e", 1.0),
    ]
    nested = parse_expression("acme/x - 0.5 * (0.5 * (acme/y + acme/z + acme/x) - acme/y)")
    assert [(str(r), w) for r, w in nested] == [("acme/x", 0.75), ("acme/y", 0.25), ("acme/z", -0.25)]
