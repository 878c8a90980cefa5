"""Expression parser: `0.5 * (acme/a + acme/b@2) - acme/c@sha256:ab12` -> one weight per ref.

Grammar (recursive descent):  expr := term (('+' | '-') term)* ;  term := unary ('*' unary)* ;
unary := ('+' | '-') unary | atom ;  atom := NUMBER | REF | '(' expr ')'.
Values are linear combinations of refs with exact rational coefficients (Fraction), so equivalent
expressions reduce to identical weights; they become floats only at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

from registry.errors import InvalidInput
from registry.refs import REF_RE, Ref

NUMBER_RE = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# A ref must not run into more name characters: `acme/a@v1x/..` or `acme/a/b` are errors.
REF_END = re.compile(r"[A-Za-z0-9._@/:-]")


@dataclass
class Value:
    """Either a scalar (terms empty, scalar set) or a linear combination of refs."""

    scalar: Fraction | None = None
    terms: dict[Ref, Fraction] = field(default_factory=dict)

    @property
    def is_scalar(self) -> bool:
        return self.scalar is not None


def _error(message: str, column: int) -> InvalidInput:
    return InvalidInput(f"expression: {message} at column {column + 1}", field="expression")


def tokenize(text: str) -> list[tuple[str, object, int]]:
    tokens: list[tuple[str, object, int]] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch.isspace():
            pos += 1
            continue
        if ch in "+-*()":
            tokens.append((ch, ch, pos))
            pos += 1
            continue
        ref = REF_RE.match(text, pos)
        if ref:
            if ref.end() < len(text) and REF_END.match(text, ref.end()):
                raise _error(f"malformed reference {text[pos : ref.end() + 1]!r}", pos)
            try:
                tokens.append(("ref", Ref.build(ref.group("name"), ref.group("selector")), pos))
            except InvalidInput as exc:
                raise _error(str(exc), pos) from None
            pos = ref.end()
            continue
        number = NUMBER_RE.match(text, pos)
        if number:
            tokens.append(("num", Fraction(number.group()), pos))
            pos = number.end()
            continue
        raise _error(f"unexpected character {ch!r}", pos)
    tokens.append(("end", None, len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, object, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, object, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expr(self) -> Value:
        value = self.term()
        while self.peek()[0] in "+-":
            op, _, col = self.take()
            value = _add(value, self.term(), -1 if op == "-" else 1, col)
        return value

    def term(self) -> Value:
        value = self.unary()
        while self.peek()[0] == "*":
            _, _, col = self.take()
            value = _mul(value, self.unary(), col)
        return value

    def unary(self) -> Value:
        if self.peek()[0] in "+-":
            op, _, _ = self.take()
            inner = self.unary()
            return _scale(inner, Fraction(-1 if op == "-" else 1))
        return self.atom()

    def atom(self) -> Value:
        kind, value, col = self.take()
        if kind == "num":
            assert isinstance(value, Fraction)
            return Value(scalar=value)
        if kind == "ref":
            assert isinstance(value, Ref)
            return Value(terms={value: Fraction(1)})
        if kind == "(":
            inner = self.expr()
            if self.peek()[0] != ")":
                raise _error("expected ')'", self.peek()[2])
            self.take()
            return inner
        what = "end of expression" if kind == "end" else repr(value)
        raise _error(f"unexpected {what}", col)


def _scale(v: Value, k: Fraction) -> Value:
    if v.is_scalar:
        assert v.scalar is not None
        return Value(scalar=v.scalar * k)
    return Value(terms={r: c * k for r, c in v.terms.items()})


def _add(a: Value, b: Value, sign: int, col: int) -> Value:
    if a.is_scalar and b.is_scalar:
        assert a.scalar is not None and b.scalar is not None
        return Value(scalar=a.scalar + sign * b.scalar)
    if a.is_scalar or b.is_scalar:
        raise _error("cannot add a number to an adapter (write `number * adapter`)", col)
    terms = dict(a.terms)
    for ref, c in b.terms.items():
        terms[ref] = terms.get(ref, Fraction(0)) + sign * c
    return Value(terms=terms)


def _mul(a: Value, b: Value, col: int) -> Value:
    if a.is_scalar:
        assert a.scalar is not None
        return _scale(b, a.scalar)
    if b.is_scalar:
        assert b.scalar is not None
        return _scale(a, b.scalar)
    raise _error("cannot multiply two adapters (only scalar multiplication)", col)


def reduce_expression(text: str) -> dict[Ref, Fraction]:
    """Exact weights per ref, in order of first appearance, zeros included."""
    if not text or not text.strip():
        raise InvalidInput("expression: empty expression", field="expression")
    parser = _Parser(text)
    value = parser.expr()
    kind, tok, col = parser.peek()
    if kind != "end":
        raise _error(f"unexpected {tok!r}", col)
    if value.is_scalar:
        raise InvalidInput("expression: a number alone names no adapter", field="expression")
    return value.terms


def parse_expression(text: str) -> list[tuple[Ref, float]]:
    """One (ref, weight) per distinct ref, order of first appearance; refs whose weights cancel to 0
    are dropped, and an expression where every weight cancels is an error."""
    weights = [(ref, float(w)) for ref, w in reduce_expression(text).items() if w != 0]
    if not weights:
        raise InvalidInput("expression: every weight reduces to 0", field="expression")
    return weights
