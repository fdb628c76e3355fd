"""Filters of a sweep's stored runs: a small condition language, parsed and checked here, then run
as parameterized SQL. Column names are checked against the runs table and values are bound, never
pasted into the statement, so a filter typed on the command line cannot change the query.

    task = 'latch' AND length >= 25
    WHERE success = 1 AND lr IN (0.01, 0.1) ORDER BY lr DESC, seed
    labels.method = MSGD-C AND updates_to_success IS NOT NULL
    lr = ?                                    (with the value bound from ``params``)

Grammar (keywords in any case)::

    filter     := [WHERE] [condition (AND condition)*] [ORDER BY key [ASC | DESC] (, key [ASC | DESC])*]
    condition  := column op value | column IS [NOT] NULL | column [NOT] IN (value (, value)*)
    op         := =  ==  !=  <>  <  <=  >  >=
    value      := number | 'text' | "text" (a doubled quote inside is one quote) | bare-word text
                | true | false | ?  (the next of the bound parameters)
    column     := a non-JSON column of the runs table (:data:`FILTER_COLUMNS`) | labels.<name>

``labels.<name>`` is the run's bundle label of that factor (e.g. Pascanu's ``method``). There is
no OR: conditions are joined by AND (run several filters for a union).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .schema import JSON_COLUMNS, NAMES

#: the columns a filter or an ordering may name (the JSON columns hold documents, not values).
FILTER_COLUMNS = tuple(name for name in NAMES if name not in JSON_COLUMNS)
#: SQL of each comparison operator (``==`` is spelled ``=``, ``<>`` ``!=``).
OPERATORS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_LABEL = re.compile(r"labels\.([A-Za-z_][A-Za-z_0-9]*)")
_TOKEN = re.compile(r"""\s*(?:
      (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
    | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<op><=|>=|==|!=|<>|=|<|>)
    | (?P<punct>[(),?])
    | (?P<word>[A-Za-z_][\w.\-]*)
    )""", re.VERBOSE)
_KEYWORDS = {"where", "and", "or", "order", "by", "asc", "desc", "is", "not", "null", "in"}


class QueryError(ValueError):
    """A run filter is invalid; the message names the offending part and what is allowed."""


def check_column(name: str) -> None:
    """Raise :class:`QueryError` unless ``name`` is a filterable column or ``labels.<name>``."""
    if name not in FILTER_COLUMNS and not _LABEL.fullmatch(name):
        raise QueryError(f"unknown column {name!r}; a filter may name {list(FILTER_COLUMNS)} or labels.<factor>")


def _column_sql(name: str) -> tuple[str, tuple]:
    """The SQL of a checked column and its bound parameters (a label is a JSON path, bound too)."""
    label = _LABEL.fullmatch(name)
    return ("json_extract(labels, ?)", (f"$.{label.group(1)}",)) if label else (name, ())


@dataclass(frozen=True)
class Condition:
    """``column op value``: op one of :data:`OPERATORS`, ``"is"`` / ``"is not"`` (value None),
    ``"in"`` / ``"not in"`` (value a non-empty tuple)."""

    column: str
    op: str
    value: object = None

    def __post_init__(self):
        check_column(self.column)
        if self.op in ("in", "not in"):
            if not isinstance(self.value, tuple) or not self.value:
                raise QueryError(f"{self.column} {self.op.upper()} needs a non-empty list of values, got {self.value!r}")
        elif self.op in ("is", "is not"):
            if self.value is not None:
                raise QueryError(f"{self.column} {self.op.upper()} compares with NULL only, got {self.value!r}")
        elif self.op not in OPERATORS:
            raise QueryError(f"unknown operator {self.op!r}; allowed: {sorted(OPERATORS)}, IS [NOT] NULL, [NOT] IN")
        elif self.value is None:  # SQL's "x = NULL" is never true
            raise QueryError(f"{self.column} {self.op} NULL matches nothing: write {self.column} IS [NOT] NULL")

    def sql(self) -> tuple[str, tuple]:
        column, params = _column_sql(self.column)
        if self.op in ("is", "is not"):
            return f"{column} {self.op.upper()} NULL", params
        if self.op in ("in", "not in"):
            return f"{column} {self.op.upper()} ({', '.join('?' * len(self.value))})", params + self.value
        return f"{column} {OPERATORS[self.op]} ?", params + (self.value,)


@dataclass(frozen=True)
class RunFilter:
    """Conditions on the runs (joined by AND) and an ordering ((column, descending) pairs)."""

    conditions: tuple[Condition, ...] = ()
    order: tuple[tuple[str, bool], ...] = ()

    def __post_init__(self):
        for column, _ in self.order:
            check_column(column)

    @classmethod
    def parse(cls, text: str = "", params: Sequence = ()) -> "RunFilter":
        """Parse ``text`` (module docstring); ``?`` values are taken from ``params`` in order."""
        if not isinstance(text, str):
            raise QueryError(f"a run filter must be a string, got {type(text).__name__}")
        return _Parser(text, tuple(params)).parse()

    def and_(self, other: "RunFilter") -> "RunFilter":
        """Both filters' conditions; ``other``'s ordering where this one has none."""
        return RunFilter(self.conditions + other.conditions, self.order or other.order)

    def sql(self) -> tuple[str, tuple]:
        """``"WHERE … ORDER BY …"`` (either part may be absent) and its bound parameters."""
        parts, params = [], ()
        if self.conditions:
            texts = []
            for c in self.conditions:
                text, bound = c.sql()
                texts.append(text)
                params += bound
            parts.append("WHERE " + " AND ".join(texts))
        if self.order:
            keys = []
            for column, descending in self.order:
                text, bound = _column_sql(column)
                keys.append(text + (" DESC" if descending else ""))
                params += bound
            parts.append("ORDER BY " + ", ".join(keys))
        return " ".join(parts), params


class _Parser:
    """Recursive descent over the tokens of one filter (grammar in the module docstring)."""

    def __init__(self, text: str, params: tuple):
        self.text, self.params, self.used = text, params, 0
        self.tokens, pos = [], 0
        while pos < len(text):
            if text[pos:].isspace():
                break
            m = _TOKEN.match(text, pos)
            if m is None:
                raise QueryError(f"cannot read the filter at {text[pos:].strip()[:20]!r} (in {text!r})")
            kind = m.lastgroup
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    # ---- token helpers ------------------------------------------------------------------------
    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        """Consume the keywords ``words`` if they come next (any case)."""
        n = len(words)
        ahead = self.tokens[self.i : self.i + n]
        if len(ahead) == n and all(k == "word" and v.lower() == w for (k, v), w in zip(ahead, words)):
            self.i += n
            return True
        return False

    def expect(self, kind: str, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            self.fail(f"expected {value or kind}")
        self.i += 1
        return tok[1]

    def fail(self, what: str):
        tok = self.peek()
        at = "the end" if tok is None else repr(tok[1])
        raise QueryError(f"{what} at {at} in the filter {self.text!r} (conditions are joined by AND; see rnnlab.sweep.query)")

    # ---- grammar ------------------------------------------------------------------------------
    def parse(self) -> RunFilter:
        self.keyword("where")
        conditions, order = [], []
        if self.peek() is not None and not self._at_order_by():
            conditions.append(self.condition())
            while self.keyword("and"):
                conditions.append(self.condition())
        if self.keyword("order", "by"):
            order.append(self.order_key())
            while self.peek() == ("punct", ","):
                self.i += 1
                order.append(self.order_key())
        if self.peek() is not None:
            self.fail("OR is not supported" if self.peek()[1].lower() == "or" else "unexpected text")
        if self.used != len(self.params):
            raise QueryError(f"the filter {self.text!r} has {self.used} ? placeholders but {len(self.params)} values were given")
        return RunFilter(tuple(conditions), tuple(order))

    def _at_order_by(self) -> bool:
        ahead = self.tokens[self.i : self.i + 2]
        return [v.lower() for k, v in ahead if k == "word"] == ["order", "by"]

    def column(self) -> str:
        tok = self.peek()
        if tok is None or tok[0] != "word" or tok[1].lower() in _KEYWORDS:
            self.fail("expected a column name")
        self.i += 1
        check_column(tok[1])
        return tok[1]

    def condition(self) -> Condition:
        column = self.column()
        if self.keyword("is", "not", "null"):
            return Condition(column, "is not")
        if self.keyword("is", "null"):
            return Condition(column, "is")
        for op in ("not in", "in"):
            if self.keyword(*op.split()):
                self.expect("punct", "(")
                values = [self.value()]
                while self.peek() == ("punct", ","):
                    self.i += 1
                    values.append(self.value())
                self.expect("punct", ")")
                return Condition(column, op, tuple(values))
        return Condition(column, self.expect("op"), self.value())

    def value(self):
        tok = self.peek()
        if tok is None:
            self.fail("expected a value")
        kind, text = tok
        self.i += 1
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "string":
            return text[1:-1].replace(text[0] * 2, text[0])
        if tok == ("punct", "?"):
            if self.used >= len(self.params):
                raise QueryError(f"the filter {self.text!r} has more ? placeholders than the {len(self.params)} values given")
            self.used += 1
            return self.params[self.used - 1]
        if kind == "word" and text.lower() not in _KEYWORDS:
            return {"true": 1, "false": 0}.get(text.lower(), text)
        self.i -= 1
        self.fail("expected a value (NULL: write IS [NOT] NULL)" if text.lower() == "null" else "expected a value")

    def order_key(self) -> tuple[str, bool]:
        column = self.column()
        if self.keyword("desc"):
            return column, True
        self.keyword("asc")
        return column, False
