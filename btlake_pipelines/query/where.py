"""The ``--where`` language: a small, safe predicate language over run columns.

Text is tokenized and parsed here into a polars expression; it is never turned into SQL or
evaluated. Grammar (case-insensitive keywords)::

    expr    := term ("or" term)*
    term    := factor ("and" factor)*
    factor  := "not" factor | "(" expr ")" | test
    test    := field op value | field ["not"] "in" "(" value ("," value)* ")"
             | field ["not"] "like" string | field "is" ["not"] "null"
    op      := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    value   := 'string' | number | true | false

Fields: run columns (``run_id``, ``strategy_id``, ``created_at``, ``code_version``, ...),
``engine.name``, ``engine.version``, ``params.NAME``, ``metrics.NAME``, ``environment.NAME``,
and the lists ``markets`` / ``tags`` (``=`` and ``like`` mean "any element", ``in`` means
"overlaps"). A missing param or metric is null: it matches no comparison (SQL null logic).

Where params and metrics come from is a :class:`FieldSource`: the catalog's long tables (a
search then fills only the names it uses), or :class:`StructFields`, the struct columns of the
layout before ``param_values``, for a frame in that layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import polars as pl

from btlake_pipelines.errors import QueryError

MAX_LENGTH = 10_000
MAX_DEPTH = 64

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<string>'(?:[^']|'')*')"
    r"|(?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z_]))"
    r"|(?P<op><=|>=|!=|<>|=|<|>)"
    r"|(?P<punct>[(),])"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_][A-Za-z0-9_\-]*)*)"
    r")"
)
_KEYWORDS = {"and", "or", "not", "in", "like", "is", "null", "true", "false"}
_ALIASES = {"strategy": "strategy_id", "engine.name": "engine_name",
            "engine.version": "engine_version", "run": "run_id", "hash": "content_hash"}
_LISTS = {"markets", "tags", "tables"}
#: Columns that hold params, metrics or JSON documents: reached through their NAME forms.
_NOT_FIELDS = frozenset({"params", "metrics", "manifest", "environment", "extra", "param_values",
                         "metric_values", "params_num", "params_str", "params_bool"})


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise QueryError(f"{{param}} is too long ({len(text)} characters; at most {MAX_LENGTH})",
                         param="where")
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            start = len(text) - len(text[pos:].lstrip())
            raise QueryError(f"bad {{param}} at character {start + 1}: unexpected "
                             f"{text[start:start + 12]!r}", param="where")
        kind = m.lastgroup or ""
        value, start = m.group(kind), m.start(kind)
        if kind == "word" and value.lower() in _KEYWORDS:
            kind, value = "kw", value.lower()
        tokens.append(Token(kind, value, start + 1))
        pos = m.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class FieldSource(Protocol):
    """Where ``params.NAME`` and ``metrics.NAME`` are found. Param kinds are ``number``,
    ``string`` and ``bool``: a param name may have been stored with more than one."""

    def param_kinds(self, name: str) -> list[str]:
        """The kinds ``name`` has among stored runs, in the order number, string, bool."""
        ...

    def param(self, name: str, kind: str) -> pl.Expr:
        """The param's value of that kind per run (null where a run has none)."""
        ...

    def metric(self, name: str) -> pl.Expr | None:
        """The metric per run, or None when no run has it."""
        ...


class StructFields:
    """Params and metrics in the struct columns of the layout before ``param_values``
    (``params_num`` / ``params_str`` / ``params_bool``, ``metrics``: one field per name)."""

    _COLUMNS: ClassVar[dict[str, str]] = {"number": "params_num", "string": "params_str",
                                          "bool": "params_bool"}

    def __init__(self, schema: pl.Schema) -> None:
        self.schema = schema

    def _fields(self, column: str) -> set[str]:
        dtype = self.schema.get(column)
        return {f.name for f in dtype.fields} if isinstance(dtype, pl.Struct) else set()

    def param_kinds(self, name: str) -> list[str]:
        return [k for k, col in self._COLUMNS.items() if name in self._fields(col)]

    def param(self, name: str, kind: str) -> pl.Expr:
        return pl.col(self._COLUMNS[kind]).struct.field(name)

    def metric(self, name: str) -> pl.Expr | None:
        return pl.col("metrics").struct.field(name) if name in self._fields("metrics") else None


class Schema:
    """What the runs table holds, so fields resolve to columns and types before filtering."""

    def __init__(self, schema: pl.Schema, fields: FieldSource | None = None) -> None:
        self.schema = schema
        self.fields: FieldSource = fields if fields is not None else StructFields(schema)


def parse_where(text: str, schema: pl.Schema, fields: FieldSource | None = None) -> pl.Expr:
    """The polars filter expression of ``text``, or a :class:`QueryError` saying what to fix.
    ``fields``: where params and metrics are (default: struct columns of ``schema``)."""
    parser = _Parser(tokenize(text), Schema(schema, fields))
    expr = parser.expr(0)
    parser.expect("end")
    return expr


def field_expr(name: str, schema: pl.Schema, literal: Any = None,
               fields: FieldSource | None = None) -> tuple[pl.Expr, str]:
    """A run field as (expression, type): type is one of number, string, bool, time, list."""
    return _resolve(name, Schema(schema, fields), literal)


class _Parser:
    def __init__(self, tokens: list[Token], schema: Schema) -> None:
        self.tokens = tokens
        self.i = 0
        self.schema = schema

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def accept(self, kind: str, text: str | None = None) -> bool:
        if self.tok.kind == kind and (text is None or self.tok.text == text):
            self.i += 1
            return True
        return False

    def expect(self, kind: str, text: str | None = None) -> Token:
        if self.tok.kind != kind or (text is not None and self.tok.text != text):
            want = text or {"end": "end of expression", "word": "a field name"}.get(kind, kind)
            got = self.tok.text or "end of expression"
            raise QueryError(f"bad {{param}} at character {self.tok.pos}: expected {want}, "
                             f"got {got!r}", param="where")
        return self.take()

    def expr(self, depth: int) -> pl.Expr:
        if depth > MAX_DEPTH:
            raise QueryError(f"{{param}} is nested too deeply (more than {MAX_DEPTH} "
                             "levels)", param="where")
        left = self.term(depth)
        while self.accept("kw", "or"):
            left = left | self.term(depth)
        return left

    def term(self, depth: int) -> pl.Expr:
        left = self.factor(depth)
        while self.accept("kw", "and"):
            left = left & self.factor(depth)
        return left

    def factor(self, depth: int) -> pl.Expr:
        if depth > MAX_DEPTH:
            raise QueryError(f"{{param}} is nested too deeply (more than {MAX_DEPTH} "
                             "levels)", param="where")
        if self.accept("kw", "not"):
            return ~self.factor(depth + 1)
        if self.accept("punct", "("):
            inner = self.expr(depth + 1)
            self.expect("punct", ")")
            return inner
        return self.test()

    def test(self) -> pl.Expr:
        field = self.expect("word")
        negate = self.accept("kw", "not")
        if self.accept("kw", "in"):
            self.expect("punct", "(")
            values = [self.value()]
            while self.accept("punct", ","):
                values.append(self.value())
            self.expect("punct", ")")
            out = self.membership(field, values)
        elif self.accept("kw", "like"):
            pattern = self.value()
            if not isinstance(pattern, str):
                raise QueryError(f"like needs a quoted pattern after {field.text}")
            out = self.like(field, pattern)
        elif not negate and self.accept("kw", "is"):
            negate = self.accept("kw", "not")
            self.expect("kw", "null")
            col, _ = _resolve(field.text, self.schema, None)
            out = col.is_null()
        elif not negate and self.tok.kind == "op":
            op = self.take().text
            return self.compare(field, op, self.value())
        else:
            raise QueryError(f"bad {{param}} at character {self.tok.pos}: expected a comparison "
                             f"(= != < <= > >=), in, like or is after {field.text!r}",
                             param="where")
        return ~out if negate else out

    def value(self) -> Any:
        t = self.take()
        if t.kind == "string":
            return t.text[1:-1].replace("''", "'")
        if t.kind == "number":
            number = float(t.text)
            if number != number or number in (float("inf"), float("-inf")):
                raise QueryError(f"number {t.text!r} is out of range")
            return int(t.text) if re.fullmatch(r"[+-]?\d+", t.text) else number
        if t.kind == "kw" and t.text in ("true", "false"):
            return t.text == "true"
        raise QueryError(f"bad {{param}} at character {t.pos}: expected a value ('text', a "
                         f"number, true or false), got {t.text or 'end of expression'!r}",
                         param="where")

    def compare(self, field: Token, op: str, value: Any) -> pl.Expr:
        col, kind = _resolve(field.text, self.schema, value)
        lit = _literal(field.text, kind, value)
        if kind == "list":
            if op not in ("=", "!="):
                raise QueryError(f"{field.text} is a list: use =, !=, in or like")
            hit = col.list.contains(pl.lit(lit, pl.String))
            return hit if op == "=" else ~hit
        return {
            "=": col == lit, "!=": col != lit, "<>": col != lit, "<": col < lit,
            "<=": col <= lit, ">": col > lit, ">=": col >= lit,
        }[op]

    def membership(self, field: Token, values: list[Any]) -> pl.Expr:
        col, kind = _resolve(field.text, self.schema, values[0])
        lits = [_literal(field.text, kind, v) for v in values]
        if kind == "list":
            return col.list.eval(pl.element().is_in(lits)).list.any()
        if kind in ("time", "date"):
            out = pl.lit(False)
            for lit in lits:
                out = out | (col == lit)
            return pl.when(col.is_null()).then(None).otherwise(out)
        return pl.when(col.is_null()).then(None).otherwise(col.is_in(lits))

    def like(self, field: Token, pattern: str) -> pl.Expr:
        col, kind = _resolve(field.text, self.schema, pattern)
        if kind not in ("string", "list"):
            raise QueryError(f"like needs a text field; {field.text} is a {kind}")
        regex = like_to_regex(pattern)
        if kind == "list":
            return col.list.eval(pl.element().str.contains(regex)).list.any()
        return col.str.contains(regex)


def like_to_regex(pattern: str) -> str:
    """SQL ``like`` (``%`` any run, ``_`` one character, case-sensitive) as an anchored regex."""
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return "(?s)^" + "".join(out) + "$"


def _resolve(name: str, schema: Schema, literal: Any) -> tuple[pl.Expr, str]:
    name = _ALIASES.get(name, name)
    head, _, rest = name.partition(".")
    if head == "params" and rest:
        return _param(rest, schema, literal)
    if head == "metrics" and rest:
        expr = schema.fields.metric(rest)
        return (pl.lit(None, pl.Float64) if expr is None else expr), "number"
    if head == "environment" and rest:
        if "environment" not in schema.schema:
            return pl.lit(None, pl.String), "string"
        parts = rest.split(".")
        if not all(re.fullmatch(r"[A-Za-z0-9_\-]+", p) for p in parts):
            raise QueryError(f"bad field {name[:80]!r}: environment.NAME takes letters, digits, "
                             "_ and - in each dotted part")
        # bracket notation: the only JSON-path spelling polars takes for keys like "a-b" or "0"
        path = "$" + "".join(f"['{p}']" for p in parts)
        return pl.col("environment").str.json_path_match(path), "string"
    dtype = schema.schema.get(name)
    if dtype is None or name in _NOT_FIELDS:
        known = ", ".join(sorted(c for c in schema.schema if c not in _NOT_FIELDS and
                                 not c.startswith(("params", "metrics", "\x00"))))
        raise QueryError(f"{{param}}: unknown field {name!r}; use params.NAME, metrics.NAME, "
                         f"engine.name or one of: {known}", param="where")
    if isinstance(dtype, pl.List):
        return pl.col(name), "list"
    if isinstance(dtype, pl.Date):
        return pl.col(name), "date"
    if isinstance(dtype, pl.Datetime):
        return pl.col(name), "time"
    if dtype.is_numeric():
        return pl.col(name), "number"
    if dtype == pl.Boolean:
        return pl.col(name), "bool"
    if dtype == pl.String:
        return pl.col(name), "string"
    raise QueryError(f"field {name!r} cannot be compared")


def _param(name: str, schema: Schema, literal: Any) -> tuple[pl.Expr, str]:
    present = schema.fields.param_kinds(name)
    wanted = _kind_of(literal)
    if wanted is None:  # is null / is not null / order by: any type counts
        exprs = [schema.fields.param(name, k) for k in present]
        if not exprs:
            return pl.lit(None, pl.String), "string"
        if len(exprs) == 1:  # typed, so that --order-by sorts numbers as numbers
            return exprs[0], present[0]
        return pl.coalesce([e.cast(pl.String) for e in exprs]), "string"
    if wanted not in present:
        if present:
            raise QueryError(f"params.{name} is a {present[0]}; compare it with a "
                             f"{_example(present[0])}, not a {wanted}")
        # typed, so that like / in on a param no run has is "no match", not a polars error
        typed = {"number": pl.Float64, "string": pl.String, "bool": pl.Boolean}[wanted]
        return pl.lit(None, typed), wanted
    return schema.fields.param(name, wanted), wanted


def _kind_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _example(kind: str) -> str:
    return {"number": "number", "string": "quoted string", "bool": "true or false"}[kind]


def _literal(field: str, kind: str, value: Any) -> Any:
    got = _kind_of(value)
    if kind in ("time", "date"):
        if got != "string":
            raise QueryError(f"{field} is a time; compare it with a quoted ISO-8601 timestamp")
        from btlake_pipelines.versions.time_travel import parse_time

        moment = parse_time(value, what=field)
        return moment.date() if kind == "date" else moment
    if kind == "list":
        if got != "string":
            raise QueryError(f"{field} holds text; compare it with a quoted string")
        return value
    if got != kind:
        raise QueryError(f"{field} is a {kind}; compare it with a {_example(kind)}, not a {got}")
    return float(value) if kind == "number" else value

