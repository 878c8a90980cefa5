"""Expression parser: `0.5 * (acme/a + acme/b@2) - acme/c@sha256:ab12cd` -> one weight per ref.

Grammar (recursive descent):  expr := term (('+' | '-') term)* ;  term := unary ('*' unary)* ;
unary := ('+' | '-') unary | atom ;  atom := NUMBER | REF | '(' expr ')'.
Values are linear combinations of refs with exact rational coefficients (Fraction), so equivalent
expressions reduce to identical weights; they become floats only at the end.

Bounds (docs/spec.md), so that no text makes the parser slow or fail with anything but a field error:
the expression's length, the nesting of parentheses and signs, a number literal's digits and exponent,
the size of every exact intermediate value, and each final weight's magnitude (MAX_WEIGHT).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

from registry.errors import InvalidInput
from registry.refs import REF_TOKEN_RE, Ref

MAX_EXPRESSION_CHARS = 4096  # about 200 inputs; a program writing more uses `inputs`
MAX_DEPTH = 32  # parentheses and unary signs nested in each other
MAX_NUMBER_DIGITS = 30  # digits of a number literal, before its exponent
MAX_EXPONENT = 30  # |e| of a literal's `e<exponent>`
MAX_BITS = 1024  # numerator and denominator of every exact intermediate value (about 300 digits)
MAX_WEIGHT_TEXT = "1e6"  # |weight| of an input, from `expression`, `inputs` or `search.weights`
MAX_WEIGHT = float(MAX_WEIGHT_TEXT)
# Taken lexically (any run of digits), then bounded before Fraction ever sees it: `1e10000000` would
# otherwise build a ten-million-digit integer.
NUMBER_RE = re.compile(r"(?P<mantissa>[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE](?P<exponent>[+-]?[0-9]+))?")
# A ref must not run into more name characters: `acme/a@v1x/..` or `acme/a/b` are errors.
REF_END = re.compile(r"[A-Za-z0-9._@/:-]")


@dataclass
class Value:
    """Either a scalar (terms empty, scalar set) or a linear combination of refs, whose weights are
    `scale * terms[ref]`: scaling a combination is O(1), so `0.5 * (0.5 * (... (a + b + ...)))` does
    not rescale every term at every level."""

    scalar: Fraction | None = None
    terms: dict[Ref, Fraction] = field(default_factory=dict)
    scale: Fraction = Fraction(1)

    @property
    def is_scalar(self) -> bool:
        return self.scalar is not None


def _error(message: str, column: int) -> InvalidInput:
    return InvalidInput(f"expression: {message} at column {column + 1}", field="expression")


def _number(match: re.Match[str], column: int) -> Fraction:
    digits = sum(c.isdigit() for c in match.group("mantissa"))
    exponent = match.group("exponent")
    if digits > MAX_NUMBER_DIGITS:
        raise _error(f"a number has at most {MAX_NUMBER_DIGITS} digits", column)
    size = len(exponent.lstrip("+-").lstrip("0")) if exponent is not None else 0  # before int() reads it
    if exponent is not None and (size > 2 or abs(int(exponent)) > MAX_EXPONENT):
        raise _error(f"a number's exponent runs from -{MAX_EXPONENT} to {MAX_EXPONENT}", column)
    return Fraction(match.group())


def _bounded(value: Fraction, column: int) -> Fraction:
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise _error("a coefficient grows too large or too precise", column)
    return value


def tokenize(text: str) -> list[tuple[str, object, int]]:
    if len(text) > MAX_EXPRESSION_CHARS:
        raise InvalidInput(
            f"expression: at most {MAX_EXPRESSION_CHARS} characters (list many inputs under `inputs`)",
            field="expression",
        )
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
        ref = REF_TOKEN_RE.match(text, pos)
        if ref:
            if ref.end() < len(text) and REF_END.match(text, ref.end()):
                raise _error(f"malformed reference {text[pos : ref.end() + 1]!r}", pos)
            try:
                tokens.append(("ref", Ref.build(ref.group("name"), ref.group("selector"), "expression"), pos))
            except InvalidInput as exc:
                raise _error(str(exc).removeprefix("expression: "), pos) from None
            pos = ref.end()
            continue
        number = NUMBER_RE.match(text, pos)
        if number:
            tokens.append(("num", _number(number, pos), pos))
            pos = number.end()
            continue
        raise _error(f"unexpected character {ch!r}", pos)
    tokens.append(("end", None, len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, object, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, object, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def nested(self, column: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(f"parentheses and signs nest at most {MAX_DEPTH} deep", column)

    def expr(self) -> Value:
        value = self.term()
        while self.peek()[0] in "+-":
            op, _, col = self.take()
            value = _add(value, self.term(), -1 if op == "-" else 1, col)
        return value

    def term(self) -> Value:
        # Scalar factors are multiplied first and the combination scaled once, so `(a + b) * 1 * 1 ...`
        # costs one pass over its terms.
        combination: Value | None = None
        factor = Fraction(1)
        column = self.peek()[2]
        while True:
            value = self.unary()
            if value.is_scalar:
                assert value.scalar is not None
                factor = _bounded(factor * value.scalar, column)
            elif combination is None:
                combination = value
            else:
                raise _error("cannot multiply two adapters (only scalar multiplication)", column)
            if self.peek()[0] != "*":
                break
            _, _, column = self.take()
        if combination is None:
            return Value(scalar=factor)
        return combination if factor == 1 else _scale(combination, factor, column)

    def unary(self) -> Value:
        if self.peek()[0] in "+-":
            op, _, col = self.take()
            self.nested(col)
            inner = self.unary()
            self.depth -= 1
            return inner if op == "+" else _scale(inner, Fraction(-1), col)
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
            self.nested(col)
            inner = self.expr()
            self.depth -= 1
            if self.peek()[0] != ")":
                raise _error("expected ')'", self.peek()[2])
            self.take()
            return inner
        what = "end of expression" if kind == "end" else repr(value)
        raise _error(f"unexpected {what}", col)


def _scale(v: Value, k: Fraction, col: int) -> Value:
    if v.is_scalar:
        assert v.scalar is not None
        return Value(scalar=_bounded(v.scalar * k, col))
    if k == 0:  # a zero scale could not be divided out again when another value is added
        return Value(terms=dict.fromkeys(v.terms, Fraction(0)))
    return Value(terms=v.terms, scale=_bounded(v.scale * k, col))


def _add(a: Value, b: Value, sign: int, col: int) -> Value:
    """a + sign * b. Every Value is the parser's own and used once, so the larger dict absorbs the
    smaller in place: a sum costs O(n log n) over its nesting, never a copy per level."""
    if a.is_scalar and b.is_scalar:
        assert a.scalar is not None and b.scalar is not None
        return Value(scalar=_bounded(a.scalar + sign * b.scalar, col))
    if a.is_scalar or b.is_scalar:
        raise _error("cannot add a number to an adapter (write `number * adapter`)", col)
    if sign < 0:
        b = Value(terms=b.terms, scale=-b.scale)
    big, small = (a, b) if len(a.terms) >= len(b.terms) else (b, a)
    ratio = _bounded(small.scale / big.scale, col)
    for ref, c in small.terms.items():
        big.terms[ref] = _bounded(big.terms.get(ref, Fraction(0)) + ratio * c, col)
    return big


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
    # Sums merge smaller into larger, so the dict's order is not the text's: restore first appearance.
    first = {tok: i for i, (kind, tok, _) in reversed(list(enumerate(parser.tokens))) if kind == "ref"}
    ordered = sorted(value.terms, key=first.__getitem__)
    return {ref: _bounded(value.scale * value.terms[ref], 0) for ref in ordered}


def parse_expression(text: str) -> list[tuple[Ref, float]]:
    """One (ref, weight) per distinct ref, order of first appearance; refs whose weights cancel to 0
    are dropped, and an expression where every weight cancels is an error."""
    weights = [(ref, float(w)) for ref, w in _within_bound(reduce_expression(text)).items() if w != 0]
    if not weights:
        raise InvalidInput("expression: every weight reduces to 0", field="expression")
    return weights


def _within_bound(weights: dict[Ref, Fraction]) -> dict[Ref, Fraction]:
    for ref, w in weights.items():
        if abs(w) > MAX_WEIGHT:
            raise InvalidInput(
                f"expression: the weight of {ref} is {float(w):.3g}; weights are bounded by "
                f"{MAX_WEIGHT_TEXT} in magnitude",
                field="expression",
            )
    return weights
