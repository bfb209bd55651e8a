"""Filtering runs: URL parameters and a small expression language, turned into Django Q objects.

`filter_runs(queryset, params)` is the one entry point (the run table and the API both call it);
`params` is a QueryDict or any mapping (values: a string or a list of strings). Bad input raises
`FilterError`, whose message names the parameter and what is wrong; nothing here runs user text as
code, and every name an expression may use is in `NAMES` (an allow-list mapped to model fields).

Parameters, all optional ("list": repeat the parameter or separate values with commas):

  status     list of statuses (QUEUED SUBMITTED RUNNING SUCCEEDED FAILED CANCELLED, any case): any of them
  template   list of template keys (cnn, lstm, featurizer, imported): any of them
  dataset    list of dataset ids: any of them
  sweep      list of sweep ids: the trials of any of them
  submitter  list of usernames: runs any of them submitted
  tag        list of tags: runs carrying all of them
  since      runs created at or after: YYYY-MM-DD or an ISO 8601 date-time (UTC when no offset)
  until      runs created at or before; a date includes its whole day
  q          free text: every word must occur (any case) in the name, the notes or the tags
  expr       an expression over NAMES, e.g. `accuracy > 0.95 and epochs >= 5` (see EXPR_HELP)
  archived   0 (default): hide archived runs; 1: show them too; only: archived runs only
  starred    1: starred runs only

The table's own parameters (sort, cursor, size, cols) are read by webapp/history/table.py.

Expressions: comparisons `NAME OP VALUE` combined with `and`, `or`, `not` and parentheses (`not`
binds tightest, then `and`, then `or`). OP is one of = == != <> < <= > >= and ~ (text contains, any
case). VALUE is a number (5, 0.95, 1e-3, -2), a quoted string ("cnn" or 'cnn', backslash escapes),
`null` (only with = and !=), or for text names a bare word (status = running). A comparison with a
run that lacks the value (no accuracy yet) is false; `!=` is false for it too.
"""

import datetime as dt
import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from webapp.catalog.registry import TEMPLATES
from webapp.params import BadParam, parse_id
from webapp.runs.models import MAX_TAG_LENGTH, RunTag, TagError, normalize_tags
from webapp.runs.states import Status

MAX_EXPR_LENGTH = 1000
MAX_DEPTH = 30  # nested parentheses and `not`s
MAX_CONDITIONS = 50
MAX_SEARCH_LENGTH = 200
MAX_SEARCH_WORDS = 8
MAX_LIST = 50  # values of one list parameter
MAX_INT = 10**15


class FilterError(ValueError):
    """Bad filter, sort or cursor input; `message` is meant for the user, `param` names the parameter."""

    def __init__(self, message: str, param: str = ""):
        self.param = param
        self.message = f"{param}: {message}" if param else message
        super().__init__(self.message)


@dataclass(frozen=True)
class Name:
    field: str  # the ORM path compared
    kind: str  # number | int | text | choice | date | tag
    help: str


NAMES: dict[str, Name] = {
    "accuracy": Name("test_accuracy", "number", "held-out (test) accuracy"),
    "test_accuracy": Name("test_accuracy", "number", "held-out (test) accuracy"),
    "loss": Name("test_loss", "number", "held-out (test) loss"),
    "test_loss": Name("test_loss", "number", "held-out (test) loss"),
    "best_accuracy": Name("best_accuracy", "number", "highest training accuracy at an epoch's end"),
    "final_loss": Name("final_loss", "number", "training loss of the last epoch"),
    "duration": Name("duration_s", "number", "seconds from start to end (finished runs)"),
    "epochs": Name("epochs", "int", "hyperparameter"),
    "batch_size": Name("batch_size", "int", "hyperparameter"),
    "learning_rate": Name("learning_rate", "number", "hyperparameter"),
    "lr": Name("learning_rate", "number", "hyperparameter learning_rate"),
    "executors": Name("num_executors", "int", "executors"),
    "cores": Name("executor_cores", "int", "cores per executor"),
    "memory_mb": Name("executor_memory_mb", "int", "memory per executor (MB)"),
    "gpus": Name("gpus_per_executor", "int", "GPUs per executor"),
    "id": Name("pk", "int", "run id"),
    "sweep": Name("sweep_trial__sweep_id", "int", "id of the sweep the run is a trial of"),
    "status": Name("status", "choice", "QUEUED, SUBMITTED, RUNNING, SUCCEEDED, FAILED or CANCELLED"),
    "template": Name("template", "choice", "template key: " + ", ".join(TEMPLATES)),
    "name": Name("name", "text", "run name"),
    "notes": Name("notes", "text", "run notes"),
    "dataset": Name("dataset__name", "text", "dataset name"),
    "cluster": Name("cluster__name", "text", "cluster name"),
    "submitter": Name("created_by__username", "text", "username of who submitted"),
    "tag": Name("tags", "tag", "one of the run's tags"),
    "created": Name("created_at", "date", 'creation time, e.g. created >= "2026-01-31"'),
}

EXPR_HELP = (
    "Combine comparisons with and, or, not and parentheses, e.g. "
    '`accuracy > 0.95 and epochs >= 5`, `status = failed or not tag = "baseline"`, `name ~ "lstm"`. '
    "Names: " + ", ".join(NAMES) + "."
)

_CHOICES = {
    "status": {v.lower(): v for v in Status.values},
    "template": {k.lower(): k for k in TEMPLATES},
}
_OPS = {"=": "eq", "==": "eq", "!=": "ne", "<>": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "~": "has"}
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = {"and", "or", "not", "null"}


# ---------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class Token:
    kind: str  # num | str | word | op | ( | ) | end
    text: str
    pos: int  # 0-based offset in the expression
    value: object = None


def _err(message: str, pos: int | None = None) -> FilterError:
    where = f" (at character {pos + 1})" if pos is not None else ""
    return FilterError(message + where, "expr")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "()":
            tokens.append(Token(c, c, i))
            i += 1
            continue
        if c in "\"'":
            j, out = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                out.append(text[j])
                j += 1
            if j >= n:
                raise _err(f"the string starting with {c} is not closed", i)
            tokens.append(Token("str", text[i : j + 1], i, "".join(out)))
            i = j + 1
            continue
        m = _NUMBER.match(text, i)
        if m and (c != "-" or not tokens or tokens[-1].kind == "op"):
            raw = m.group()
            try:
                value = float(raw)
            except ValueError:  # pragma: no cover - the pattern only matches valid floats
                raise _err(f"{raw!r} is not a number", i) from None
            if not math.isfinite(value):
                raise _err(f"{raw} is out of range", i)
            if text[m.end() : m.end() + 1].isalpha() or text[m.end() : m.end() + 1] == "_":
                raise _err(f"{text[i : m.end() + 1]!r} is neither a number nor a name", i)
            tokens.append(Token("num", raw, i, value))
            i = m.end()
            continue
        m = _WORD.match(text, i)
        if m:
            tokens.append(Token("word", m.group(), i, m.group().lower()))
            i = m.end()
            continue
        for op in ("<=", ">=", "==", "!=", "<>", "<", ">", "=", "~"):
            if text.startswith(op, i):
                tokens.append(Token("op", op, i, _OPS[op]))
                i += len(op)
                break
        else:
            hint = " (use and / or / not)" if c in "&|!" else ""
            raise _err(f"unexpected character {c!r}{hint}", i)
    tokens.append(Token("end", "", n))
    return tokens


# ---------------------------------------------------------------- parser


class Parser:
    """Recursive descent over:  or := and ("or" and)* ;  and := not ("and" not)* ;
    not := "not" not | primary ;  primary := "(" or ")" | NAME OP VALUE."""

    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.conditions = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _is_kw(self, word: str) -> bool:
        return self.tok.kind == "word" and self.tok.value == word

    def parse(self) -> Q:
        if self.tok.kind == "end":
            raise _err("is empty")
        q = self.or_()
        if self.tok.kind != "end":
            found = "')'" if self.tok.kind == ")" else repr(self.tok.text)
            raise _err(f"expected and, or or the end, found {found}", self.tok.pos)
        return q

    def _enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _err(f"nests deeper than {MAX_DEPTH} levels", self.tok.pos)

    def or_(self) -> Q:
        q = self.and_()
        while self._is_kw("or"):
            self.i += 1
            q = q | self.and_()
        return q

    def and_(self) -> Q:
        q = self.not_()
        while self._is_kw("and"):
            self.i += 1
            q = q & self.not_()
        return q

    def not_(self) -> Q:
        if self._is_kw("not"):
            self._enter()
            self.i += 1
            q = ~self.not_()
            self.depth -= 1
            return q
        return self.primary()

    def primary(self) -> Q:
        tok = self.tok
        if tok.kind == "(":
            self._enter()
            self.i += 1
            q = self.or_()
            if self.tok.kind != ")":
                raise _err(f"expected ')' to close the '(' at character {tok.pos + 1}", self.tok.pos)
            self.i += 1
            self.depth -= 1
            return q
        if tok.kind == "word" and tok.value not in _KEYWORDS:
            return self.comparison()
        if tok.kind == "end":
            raise _err("ends too early: expected a comparison such as accuracy > 0.9", tok.pos)
        raise _err(f"expected a name, not or '(', found {tok.text!r}", tok.pos)

    def comparison(self) -> Q:
        name_tok = self.tok
        spec = NAMES.get(name_tok.value)
        if spec is None:
            close = difflib.get_close_matches(name_tok.value, NAMES, n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; names: {', '.join(NAMES)}"
            raise _err(f"unknown name {name_tok.text!r}{hint}", name_tok.pos)
        self.i += 1
        op_tok = self.tok
        if op_tok.kind != "op":
            raise _err(f"expected a comparison operator (= != < <= > >= ~) after {name_tok.text}", op_tok.pos)
        self.i += 1
        val_tok = self.tok
        if val_tok.kind not in ("num", "str", "word"):
            raise _err(f"expected a value after {name_tok.text} {op_tok.text}", val_tok.pos)
        if val_tok.kind == "word" and val_tok.value in ("and", "or", "not"):
            raise _err(f"expected a value after {name_tok.text} {op_tok.text}, found {val_tok.text!r}", val_tok.pos)
        self.i += 1
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise _err(f"has more than {MAX_CONDITIONS} comparisons", name_tok.pos)
        return condition(name_tok.value, spec, op_tok.value, val_tok)


# ---------------------------------------------------------------- comparisons → Q


_LOOKUP = {"eq": "exact", "lt": "lt", "le": "lte", "gt": "gt", "ge": "gte"}


def _compare(path: str, op: str, value) -> Q:
    if op == "ne":  # a run without the value does not differ from it either
        return ~Q(**{path: value}) & Q(**{f"{path}__isnull": False})
    return Q(**{f"{path}__{_LOOKUP[op]}": value})


def condition(name: str, spec: Name, op: str, tok: Token) -> Q:
    if tok.kind == "word" and tok.value == "null":
        if op not in ("eq", "ne"):
            raise _err(f"null can only be compared with = or != ({name} {tok.text})", tok.pos)
        if spec.kind == "tag":
            has = Q(pk__in=RunTag.objects.values("run_id"))
            return ~has if op == "eq" else has
        return Q(**{f"{spec.field}__isnull": op == "eq"})
    if spec.kind in ("number", "int"):
        return _number_condition(name, spec, op, tok)
    if spec.kind == "date":
        return _date_condition(name, spec, op, tok)
    if tok.kind == "num":
        raise _err(f'{name} is text; quote the value: {name} {_op_text(op)} "{tok.text}"', tok.pos)
    text = str(tok.value) if tok.kind == "str" else tok.text
    if op not in ("eq", "ne", "has"):
        raise _err(f"{name} can only be compared with =, != or ~ (contains)", tok.pos)
    if spec.kind == "tag":
        return _tag_condition(op, text, tok)
    if spec.kind == "choice" and op != "has":
        choice = _CHOICES[name].get(text.lower())
        if choice is None:
            raise _err(f"unknown {name} {text!r}; one of: {', '.join(_CHOICES[name].values())}", tok.pos)
        text = choice
    if op == "has":
        return Q(**{f"{spec.field}__icontains": text})
    return _compare(spec.field, op, text)


def _op_text(op: str) -> str:
    return {v: k for k, v in reversed(_OPS.items())}[op]


def _number_condition(name: str, spec: Name, op: str, tok: Token) -> Q:
    if tok.kind != "num":
        raise _err(f"{name} is a number; {tok.text} is not", tok.pos)
    if op == "has":
        raise _err(f"~ (contains) is for text; {name} is a number", tok.pos)
    value = tok.value
    if spec.kind == "number":
        return _compare(spec.field, op, value)
    if abs(value) > MAX_INT:
        raise _err(f"{tok.text} is out of range for {name}", tok.pos)
    if value != int(value):  # an integer column against a fraction: round to the same meaning
        if op == "eq":
            return Q(pk__in=[])
        if op == "ne":
            return Q(**{f"{spec.field}__isnull": False})
        value = math.floor(value) if op in ("gt", "le") else math.ceil(value)
    return _compare(spec.field, op, int(value))


def _date_condition(name: str, spec: Name, op: str, tok: Token) -> Q:
    if tok.kind != "str" or op == "has":
        raise _err(f'{name} is compared with a quoted date or date-time, e.g. {name} >= "2026-01-31"', tok.pos)
    try:
        start, end = parse_when(str(tok.value))
    except ValueError as exc:
        raise _err(str(exc), tok.pos) from None
    f = spec.field
    if end is None:  # an instant
        return _compare(f, op, start)
    # a whole day [start, end)
    return {
        "eq": Q(**{f"{f}__gte": start, f"{f}__lt": end}),
        "ne": Q(**{f"{f}__lt": start}) | Q(**{f"{f}__gte": end}),
        "lt": Q(**{f"{f}__lt": start}),
        "le": Q(**{f"{f}__lt": end}),
        "gt": Q(**{f"{f}__gte": end}),
        "ge": Q(**{f"{f}__gte": start}),
    }[op]


def _tag_condition(op: str, text: str, tok: Token) -> Q:
    if op == "has":
        return Q(pk__in=RunTag.objects.filter(tag__contains=text.lower()[:MAX_TAG_LENGTH]).values("run_id"))
    try:
        tags = normalize_tags([text])
    except TagError as exc:
        raise _err(str(exc), tok.pos) from None
    if len(tags) != 1:
        raise _err("compare tag with one tag", tok.pos)
    has = Q(pk__in=RunTag.objects.filter(tag=tags[0]).values("run_id"))
    return has if op == "eq" else ~has


def parse_expression(text: str) -> Q:
    """`accuracy > 0.95 and epochs >= 5` → Q(...). Raises FilterError with the position of the problem."""
    if len(text) > MAX_EXPR_LENGTH:
        raise FilterError(f"at most {MAX_EXPR_LENGTH} characters", "expr")
    return Parser(text).parse()


# ---------------------------------------------------------------- URL parameters


def parse_when(text: str) -> tuple[dt.datetime, dt.datetime | None]:
    """A date → (its midnight, the next midnight); a date-time → (it, None). Naive = current time zone."""
    text = text.strip()
    try:
        day = parse_date(text)
        if day is not None:
            start = timezone.make_aware(dt.datetime.combine(day, dt.time()))
            return start, start + dt.timedelta(days=1)
        when = parse_datetime(text)
    except ValueError:
        when = None
    if when is None:
        raise ValueError(f"{text[:40]!r} is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM)")
    if timezone.is_naive(when):
        when = timezone.make_aware(when)
    return when, None


def _raw(params: Mapping, key: str) -> list[str]:
    if hasattr(params, "getlist"):
        values = params.getlist(key)
    else:
        value = params.get(key)
        values = [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]
    values = [str(v) for v in values]
    if any("\x00" in v for v in values):  # PostgreSQL refuses NUL in text: an error here, not a 500
        raise FilterError("contains a NUL character", key)
    return values


def list_param(params: Mapping, key: str) -> list[str]:
    """Values of a list parameter: repeated and/or comma-separated, blanks dropped."""
    out = [part.strip() for raw in _raw(params, key) for part in raw.split(",")]
    out = [v for v in out if v]
    if len(out) > MAX_LIST:
        raise FilterError(f"at most {MAX_LIST} values", key)
    return out


def text_param(params: Mapping, key: str) -> str:
    """The last non-blank value of a one-value parameter ('' when absent)."""
    values = [v.strip() for v in _raw(params, key) if v.strip()]
    return values[-1] if values else ""


def _flag(params: Mapping, key: str, allowed: dict[str, str]) -> str:
    raw = text_param(params, key).lower()
    if raw not in allowed:
        raise FilterError(f"{raw!r} is not one of {', '.join(repr(k) for k in allowed if k)}", key)
    return allowed[raw]


_ARCHIVED = {"": "hide", "0": "hide", "false": "hide", "no": "hide", "1": "all", "true": "all", "yes": "all"}
_ARCHIVED |= {"all": "all", "only": "only"}
_STARRED = {"": "any", "0": "any", "false": "any", "no": "any", "1": "only", "true": "only", "yes": "only"}


def build_q(params: Mapping) -> Q:
    """Every filter in `params` as one Q (FilterError for the first bad parameter)."""
    q = Q()
    archived = _flag(params, "archived", _ARCHIVED)
    if archived != "all":
        # `IN (x)`, not `= x`: Django writes a boolean `= false` as `NOT archived` on SQLite, which
        # SQLite cannot match to the (team, archived, …) indexes (PostgreSQL rewrites both alike).
        q &= Q(archived__in=[archived == "only"])
    if _flag(params, "starred", _STARRED) == "only":
        q &= Q(starred=True)

    statuses = []
    for raw in list_param(params, "status"):
        value = _CHOICES["status"].get(raw.lower())
        if value is None:
            raise FilterError(f"unknown status {raw[:30]!r}; one of {', '.join(Status.values)}", "status")
        statuses.append(value)
    if statuses:
        q &= Q(status__in=statuses)

    templates = []
    for raw in list_param(params, "template"):
        value = _CHOICES["template"].get(raw.lower())
        if value is None:
            raise FilterError(f"unknown template {raw[:30]!r}; one of {', '.join(TEMPLATES)}", "template")
        templates.append(value)
    if templates:
        q &= Q(template__in=templates)

    datasets = list_param(params, "dataset")
    if datasets:
        try:
            q &= Q(dataset_id__in=[parse_id(d, "dataset") for d in datasets])
        except BadParam:
            raise FilterError("dataset ids are whole numbers (digits 0-9)", "dataset") from None

    sweeps = list_param(params, "sweep")
    if sweeps:
        try:
            q &= Q(sweep_trial__sweep_id__in=[parse_id(d, "sweep") for d in sweeps])
        except BadParam:
            raise FilterError("sweep ids are whole numbers (digits 0-9)", "sweep") from None

    submitters = list_param(params, "submitter")
    if submitters:
        q &= Q(created_by__username__in=submitters)

    try:
        tags = normalize_tags(list_param(params, "tag"))
    except TagError as exc:
        raise FilterError(str(exc), "tag") from None
    for tag in tags:
        q &= Q(pk__in=RunTag.objects.filter(tag=tag).values("run_id"))

    for key, lookup in (("since", "gte"), ("until", "lte")):
        raw = text_param(params, key)
        if not raw:
            continue
        try:
            start, end = parse_when(raw)
        except ValueError as exc:
            raise FilterError(str(exc), key) from None
        if lookup == "gte":
            q &= Q(created_at__gte=start)
        else:
            q &= Q(created_at__lt=end) if end else Q(created_at__lte=start)

    search = text_param(params, "q")
    if search:
        if len(search) > MAX_SEARCH_LENGTH:
            raise FilterError(f"at most {MAX_SEARCH_LENGTH} characters", "q")
        words = search.split()
        if len(words) > MAX_SEARCH_WORDS:
            raise FilterError(f"at most {MAX_SEARCH_WORDS} words", "q")
        for word in words:
            q &= Q(name__icontains=word) | Q(notes__icontains=word) | Q(tags__icontains=word)

    for expr in _raw(params, "expr"):
        if expr.strip():
            q &= parse_expression(expr)
    return q


def filter_runs(queryset, params: Mapping):
    """`queryset` (already limited to what the user may see) narrowed by `params`; see the module doc.
    Raises FilterError(message) for bad input."""
    return queryset.filter(build_q(params))
