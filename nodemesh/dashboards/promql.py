"""Just enough PromQL to know which series and labels a query reads.

Theory of operation: `tokenize` splits a query into identifiers, strings, numbers, durations,
Grafana variables, range brackets and operators; `analyze` walks the tokens once. An identifier
followed by `(` is a function or aggregation (it must be a known one); `by`, `without`, `on`,
`ignoring`, `group_left` and `group_right` introduce a list of label names; any other identifier
is a metric name, and a `{...}` right after it holds its label matchers. Anything else (a
selector with no metric name, an unknown function, an unterminated string) is a `PromQLError`
that says where and why, so a typo in a panel fails a unit test instead of an empty panel.

This is not a PromQL parser: it does not check operator precedence or argument counts. Grafana
variables (`$x`, `${x}`, `[[x]]`) are kept as opaque tokens, so a query can be analyzed before and
after they are substituted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


AGGREGATIONS = _words(
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk "
    "limit_ratio"
)
FUNCTIONS = _words(
    "abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week "
    "day_of_year days_in_month delta deriv exp floor histogram_avg histogram_count "
    "histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum "
    "holt_winters hour idelta increase irate label_join label_replace ln log2 log10 minute month "
    "predict_linear rate resets round scalar sgn sort sort_desc sort_by_label sort_by_label_desc "
    "sqrt time timestamp vector year avg_over_time min_over_time max_over_time sum_over_time "
    "count_over_time quantile_over_time stddev_over_time stdvar_over_time last_over_time "
    "present_over_time acos acosh asin asinh atan atanh cos cosh sin sinh tan tanh deg rad pi"
)
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
WORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[(?!\[)[^\]]*\])
  | (?P<var>\$\{[A-Za-z_]\w*(?::[A-Za-z]+)?\}|\$[A-Za-z_]\w*|\[\[[A-Za-z_]\w*\]\])
  | (?P<duration>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)
  | (?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){},@])
    """,
    re.VERBOSE,
)
_DURATION_OR_VAR = r"(?:(?:\d+(?:ms|[smhdwy]))+|\$\{?\w+\}?)"
# [5m], [$__rate_interval], and subquery ranges [1h:1m] / [1h:]
_RANGE_BODY = re.compile(rf"\[\s*{_DURATION_OR_VAR}\s*(?::\s*{_DURATION_OR_VAR}?\s*)?\]")


class PromQLError(ValueError):
    """A query this module cannot read: the message names the position and what to fix."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # string, range, var, duration, number, ident, op
    text: str
    pos: int


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    op: str  # =, !=, =~, !~
    value: str  # unquoted, variables left as written


@dataclass(frozen=True, slots=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...] = ()


@dataclass(frozen=True, slots=True)
class Analysis:
    """What a query reads: its series selectors and the label names it groups or joins on."""

    selectors: tuple[Selector, ...] = ()
    grouping: frozenset[str] = field(default_factory=frozenset)

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(s.metric for s in self.selectors)


def tokenize(query: str) -> list[Token]:
    """The tokens of `query` (whitespace and comments dropped); PromQLError on anything else."""
    tokens, pos = [], 0
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if m is None:
            raise PromQLError(f"unexpected {query[pos]!r} at {pos} in {query!r}")
        if m.lastgroup == "range" and not _RANGE_BODY.fullmatch(m.group()):
            raise PromQLError(f"range {m.group()!r} at {pos} is not a duration or a variable")
        if m.lastgroup != "space":
            tokens.append(Token(m.lastgroup, m.group(), pos))
        pos = m.end()
    return tokens


def analyze(query: str) -> Analysis:
    """Selectors and grouping labels of `query`; PromQLError if it cannot be read."""
    return _Walker(tokenize(query), query).run()


class _Walker:
    """One pass over the tokens; `i` is the next token to read."""

    def __init__(self, tokens: list[Token], query: str) -> None:
        self.tokens, self.query, self.i = tokens, query, 0
        self.selectors: list[Selector] = []
        self.grouping: set[str] = set()

    def run(self) -> Analysis:
        while self.i < len(self.tokens):
            self.step(self.tokens[self.i])
        return Analysis(tuple(self.selectors), frozenset(self.grouping))

    def peek(self, offset: int = 1) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def fail(self, token: Token | None, why: str) -> PromQLError:
        where = f"at {token.pos}" if token else "at the end"
        return PromQLError(f"{why} {where} in {self.query!r}")

    def step(self, t: Token) -> None:
        if t.kind != "ident":
            if t.kind == "op" and t.text == "{":
                raise self.fail(t, "a selector needs a metric name before '{'")
            self.i += 1
            return
        following = self.peek()
        opens = following is not None and following.text == "("
        if t.text in GROUPING:
            self.i += 1
            if opens:
                self.grouping.update(self.label_list())
        elif opens:
            if t.text not in FUNCTIONS | AGGREGATIONS:
                raise self.fail(t, f"unknown function {t.text!r}")
            self.i += 1
        elif t.text in WORDS or t.text in AGGREGATIONS:
            self.i += 1  # `sum by (x) (...)`: the aggregation's parenthesis comes later
        else:
            self.selector(t)

    def label_list(self) -> list[str]:
        """Label names between the parentheses at `i` (consumed)."""
        labels, self.i = [], self.i + 1
        while (t := self.peek(0)) is not None and t.text != ")":
            if t.kind == "ident":
                labels.append(t.text)
            elif t.text != ",":
                raise self.fail(t, f"expected a label name, got {t.text!r}")
            self.i += 1
        if t is None:
            raise self.fail(None, "unclosed label list")
        self.i += 1
        return labels

    def selector(self, name: Token) -> None:
        self.i += 1
        matchers: list[Matcher] = []
        if (t := self.peek(0)) is not None and t.text == "{":
            self.i += 1
            matchers = self.matchers()
        self.selectors.append(Selector(name.text, tuple(matchers)))

    def matchers(self) -> list[Matcher]:
        found = []
        while (t := self.peek(0)) is not None and t.text != "}":
            if t.text == ",":
                self.i += 1
                continue
            op, value = self.peek(1), self.peek(2)
            ok = t.kind == "ident" and op is not None and op.text in ("=", "!=", "=~", "!~")
            if not ok or value is None or value.kind != "string":
                raise self.fail(t, 'expected label="value" in a selector')
            found.append(Matcher(t.text, op.text, value.text[1:-1]))
            self.i += 3
        if t is None:
            raise self.fail(None, "unclosed selector")
        self.i += 1
        return found
