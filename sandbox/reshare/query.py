"""List queries as mod-rs (grails web toolkit) understands them: `filters`, `sort`, `perPage`, `offset`/`page`,
`stats`, `term`/`match`.

- `filters` (repeatable, ANDed). One filter is `<path><op><value>` with op one of `==`, `!=`, `>`, `>=`, `<`,
  `<=`, `=~` (contains, case-insensitive), `!~` (does not contain), `=i=` (equals, case-insensitive), or
  `<path> isNull` / `<path> isNotNull`. Alternatives inside one filter are ORed with `||`
  (`state.code==A||state.code==B`). Paths are dotted (`state.code`); a path into a list (`volumes.itemId`)
  matches when any element matches.
- Values are typed by the field: booleans take `true`/`false`; date fields (`lastUpdated`, `dateCreated`,
  `parsedDueDateRS`) take what Grails data binding takes (mod-rs `application.yml`
  `grails.databinding.dateFormats`: ISO-8601 date-times and dates, `timefmt.grails_date_ms`). Anything else,
  an epoch-milliseconds number included, fails as mod-rs fails: `java.text.ParseException` escapes
  web-toolkit's `SimpleLookupServiceListenerWtk` (`valueConverterService.attemptConversion`) and mod-rs's
  `views/error.gson` answers **500** `{"error": 500, "message": "java.text.ParseException: Unparseable date:
  \"...\"", "stackTrace": [...]}` (`UnparseableFilterDate`). Dates are compared at the millisecond the
  database holds (a record's `_ms` map), although records render them to the second.
- `sort=<path>[;asc|;desc]` (repeatable or comma separated). As in the database behind mod-rs there is **no
  tie-break**: rows equal on every sort key come back in an order that may differ from one call to the next
  (the simulator shuffles them), so offset paging through ties is not stable.
- `perPage` (or `max`) clamped to 100 (default 10); `page` (1-based) wins over `offset`, which is turned
  into a page (`offset / perPage + 1`, whole pages only), as web-toolkit's `RestfulController` does.

Every mistake raises `QueryError` (the server answers 400 with its message).
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .timefmt import UnparseableDate, grails_date_ms, ms_from_text

_TIES = random.Random()
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 10

STR, BOOL, INT, DATETIME = "str", "bool", "int", "datetime"

_CONDITION = re.compile(
    r"^\s*(?P<path>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op>==|!=|<>|>=|<=|=~|!~|=i=|=|>|<)(?P<value>.*)$", re.S
)
_ESCAPE = re.compile(r"\\(.)", re.S)
_NULL_CHECK = re.compile(
    r"^\s*(?P<path>[A-Za-z_][A-Za-z0-9_.]*)\s+(?P<op>isNull|isNotNull|isEmpty|isNotEmpty|isSet|isNotSet)\s*$",
    re.S | re.I,
)
_SORT = re.compile(r"^(?P<path>[A-Za-z_][A-Za-z0-9_.]*)(?:;(?P<dir>[A-Za-z]+))?$")


class QueryError(ValueError):
    """A list parameter the simulator cannot understand (answered with 400)."""


class UnparseableFilterDate(Exception):
    """A date filter value no Grails date format fits: mod-rs answers 500 with error.gson's body."""

    def __init__(self, error: UnparseableDate) -> None:
        super().__init__(str(error))
        self.body = {
            "error": 500,
            "message": f"java.text.ParseException: {error}",
            "stackTrace": [
                "java.base/java.text.DateFormat.parse(DateFormat.java:399)",
                "org.grails.databinding.converters.DateConversionHelper.convert(DateConversionHelper.groovy:57)",
                "com.k_int.web.toolkit.ValueConverterService.attemptConversion(ValueConverterService.groovy:18)",
            ],
        }


@dataclass(frozen=True)
class Field:
    """A filterable/sortable field: its dotted path in the JSON record and its value type."""

    path: str
    kind: str = STR
    sortable: bool = True

    def values(self, record: Mapping[str, Any]) -> list[Any]:
        """The value(s) at the path; a list on the way fans out (any element may match)."""
        current: list[Any] = [record]
        for part in self.path.split("."):
            following: list[Any] = []
            for item in current:
                value = item.get(part) if isinstance(item, Mapping) else None
                if isinstance(value, list):
                    following.extend(value)
                else:
                    following.append(value)
            current = following
        if self.kind == DATETIME:
            exact = record.get("_ms")
            if isinstance(exact, Mapping) and self.path in exact:
                return [exact[self.path]]  # the millisecond the database holds
            return [_datetime_ms(value) for value in current]
        return current


def _datetime_ms(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return ms_from_text(str(value))
    except ValueError:
        return None


# ---------------------------------------------------------------- filters


Predicate = Callable[[Mapping[str, Any]], bool]


def compile_filters(filters: Iterable[str], fields: Mapping[str, Field]) -> Predicate:
    """All filters ANDed, each parsed by web-toolkit's grammar (`SimpleLookupWtk.g4`, `filter_expr`):
    `!` binds tightest, then `&&`, then `||`; parentheses group; a condition is `<field><op><value>` or
    `<field> isNull|isNotNull|isEmpty|isNotEmpty|isSet|isNotSet`; `\\x` escapes a character of a value."""
    predicates = _compile_each(filters, fields)

    def matches(record: Mapping[str, Any]) -> bool:
        return all(predicate(record) for predicate in predicates)

    return matches


def _compile_each(filters: Iterable[str], fields: Mapping[str, Field]) -> list[Predicate]:
    predicates: list[Predicate] = []
    for text in filters:
        if not text.strip():
            raise QueryError("empty filter")
        predicates.append(_FilterParser(text, fields).parse())
    return predicates


class _FilterParser:
    """Recursive descent over one filter: or := and ('||' and)*; and := unary ('&&' unary)*;
    unary := '!' unary | '(' or ')' | condition."""

    def __init__(self, text: str, fields: Mapping[str, Field]) -> None:
        self.text = text
        self.at = 0
        self.fields = fields

    def parse(self) -> Predicate:
        predicate = self._or()
        self._skip_space()
        if self.at != len(self.text):
            raise QueryError(f"bad filter '{self.text}': unexpected '{self.text[self.at :]}'")
        return predicate

    def _skip_space(self) -> None:
        while self.at < len(self.text) and self.text[self.at] in " \t":
            self.at += 1

    def _take(self, token: str) -> bool:
        self._skip_space()
        if self.text.startswith(token, self.at):
            self.at += len(token)
            return True
        return False

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._take("||"):
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]
        return lambda record: any(part(record) for part in parts)

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._take("&&"):
            parts.append(self._unary())
        if len(parts) == 1:
            return parts[0]
        return lambda record: all(part(record) for part in parts)

    def _unary(self) -> Predicate:
        self._skip_space()
        if self.text.startswith("!", self.at) and not self.text.startswith(("!=", "!~"), self.at):
            self.at += 1
            inner = self._unary()
            return lambda record: not inner(record)
        if self._take("("):
            inner = self._or()
            if not self._take(")"):
                raise QueryError(f"bad filter '{self.text}': a '(' is not closed")
            return inner
        return self._condition()

    def _condition(self) -> Predicate:
        """Read up to the next top-level `&&`, `||` or `)` (escapes kept), then compile it."""
        start, chars = self.at, []
        while self.at < len(self.text):
            char = self.text[self.at]
            if char == "\\" and self.at + 1 < len(self.text):
                chars.append(self.text[self.at : self.at + 2])
                self.at += 2
                continue
            if char == ")" or self.text.startswith(("&&", "||"), self.at):
                break
            if char == "(":
                raise QueryError(f"bad filter '{self.text}': unexpected '(' in a condition")
            chars.append(char)
            self.at += 1
        text = "".join(chars)
        if not text.strip():
            raise QueryError(f"bad filter '{self.text}': empty condition at {start}")
        return _compile_condition(text, self.fields)


def _field(path: str, fields: Mapping[str, Field]) -> Field:
    field = fields.get(path)
    if field is None:
        raise QueryError(f"unknown field '{path}' (known: {', '.join(sorted(fields))})")
    return field


def _compile_condition(text: str, fields: Mapping[str, Field]) -> Predicate:
    null_check = _NULL_CHECK.match(text)
    if null_check:
        field = _field(null_check["path"], fields)
        op = null_check["op"].lower()
        if op in ("isnull", "isnotnull"):
            want_null = op == "isnull"
            return lambda record: any((value is None) == want_null for value in field.values(record))
        want_empty = op in ("isempty", "isnotset")

        def empty(record: Mapping[str, Any]) -> bool:
            values = [value for value in field.values(record) if value not in (None, "", [])]
            return not values

        return lambda record: empty(record) == want_empty
    match = _CONDITION.match(text)
    if not match:
        raise QueryError(
            f"bad filter '{text}': expected <field><op><value> with op one of "
            "==, !=, >, >=, <, <=, =~, !~, =i=, or '<field> isNull' / '<field> isNotNull'"
        )
    field = _field(match["path"], fields)
    op = {"=": "==", "<>": "!="}.get(match["op"], match["op"])
    return _Condition(field, op, _typed_value(field, op, _ESCAPE.sub(r"\1", match["value"].strip())))


@dataclass(frozen=True)
class _Condition:
    """One `<field><op><value>` condition: a predicate that also tells what it asks (an ordered source uses a
    whole filter that is one such condition to narrow the rows it reads; the condition is still applied)."""

    field: Field
    op: str
    wanted: Any

    def __call__(self, record: Mapping[str, Any]) -> bool:
        return any(_compare(value, self.op, self.wanted) for value in self.field.values(record))


def _typed_value(field: Field, op: str, raw: str) -> Any:
    if field.kind == STR:
        return raw
    if op in ("=~", "!~", "=i="):
        raise QueryError(f"operator {op} applies to text fields only, not to '{field.path}'")
    if field.kind == BOOL:
        if op not in ("==", "!="):
            raise QueryError(f"'{field.path}' is a boolean: use == or !=")
        if raw.strip().lower() not in ("true", "false"):
            raise QueryError(f"'{field.path}' is a boolean: value must be true or false, not '{raw}'")
        return raw.strip().lower() == "true"
    if field.kind == INT:
        try:
            return int(raw.strip())
        except ValueError:
            raise QueryError(f"'{field.path}' needs an integer, not '{raw}'") from None
    try:
        return grails_date_ms(raw)
    except UnparseableDate as error:
        raise UnparseableFilterDate(error) from None


def _compare(value: Any, op: str, wanted: Any) -> bool:
    if op == "!=":
        return value != wanted
    if value is None:
        return op == "!~"
    if op == "==":
        return value == wanted
    if op == "=i=":
        return str(value).lower() == str(wanted).lower()
    if op == "=~":
        return str(wanted).lower() in str(value).lower()
    if op == "!~":
        return str(wanted).lower() not in str(value).lower()
    if isinstance(wanted, str):
        value = str(value)
    try:
        if op == ">":
            return value > wanted
        if op == ">=":
            return value >= wanted
        if op == "<":
            return value < wanted
        return value <= wanted
    except TypeError:
        return False


# ---------------------------------------------------------------- sort and paging


def sort_records(
    records: list[dict[str, Any]], sorts: Sequence[str], fields: Mapping[str, Field]
) -> list[dict[str, Any]]:
    """Multi-key sort with no tie-break (ties shuffled, as a database may return them). Missing values first."""
    keys = parse_sorts(sorts, fields)
    ordered = list(records)
    _TIES.shuffle(ordered)
    for field, descending in reversed(keys):
        ordered.sort(key=functools.partial(_sort_key, field), reverse=descending)
    return ordered


def parse_sorts(sorts: Sequence[str], fields: Mapping[str, Field]) -> list[tuple[Field, bool]]:
    """The sort keys, `(field, descending)`, most significant first."""
    keys: list[tuple[Field, bool]] = []
    for chunk in sorts:
        for text in chunk.split(","):
            text = text.strip()
            if not text:
                raise QueryError("empty sort")
            match = _SORT.match(text)
            if not match:
                raise QueryError(f"bad sort '{text}': expected <field>;asc or <field>;desc")
            field = _field(match["path"], fields)
            if not field.sortable:
                raise QueryError(f"cannot sort on '{field.path}'")
            direction = (match["dir"] or "asc").lower()
            if direction not in ("asc", "desc"):
                raise QueryError(f"bad sort direction '{match['dir']}': use asc or desc")
            keys.append((field, direction == "desc"))
    return keys


def _sort_key(field: Field, record: Mapping[str, Any]) -> tuple[int, Any]:
    values = field.values(record)
    value = values[0] if values else None
    if value is None:
        return (0, 0)
    if field.kind == STR:
        return (1, str(value))
    return (1, value)


@dataclass(frozen=True)
class Page:
    offset: int
    per_page: int


def parse_int(params: Mapping[str, list[str]], name: str) -> int | None:
    raw = single(params, name)
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        raise QueryError(f"{name} must be an integer, not '{raw}'") from None


def parse_page(params: Mapping[str, list[str]], default_per_page: int = DEFAULT_PER_PAGE) -> Page:
    """web-toolkit ``RestfulController.doTheLookup``: ``perPage`` (else ``max``, else the default; 0 counts as
    absent, Groovy's ``?:``) clamped to 100; ``page`` wins, else ``offset`` becomes page ``offset / perPage + 1``
    (cut to a whole page), so an offset inside a page starts at that page's first row."""
    per_page = parse_int(params, "perPage") or parse_int(params, "max") or default_per_page
    if per_page < 0:
        raise QueryError(f"perPage must not be negative, not {per_page}")
    per_page = min(per_page, MAX_PER_PAGE)
    offset = parse_int(params, "offset") or 0
    page = parse_int(params, "page")
    if not page:
        page = offset // per_page + 1 if offset else 1
    if page < 1 or offset < 0:
        raise QueryError(f"page counts from 1 and offset from 0, not page {page} offset {offset}")
    return Page(offset=(page - 1) * per_page, per_page=per_page)


def parse_flag(params: Mapping[str, list[str]], name: str) -> bool:
    raw = single(params, name)
    if raw is None or raw == "":
        return False
    if raw.lower() not in ("true", "false"):
        raise QueryError(f"{name} must be true or false, not '{raw}'")
    return raw.lower() == "true"


def single(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise QueryError(f"{name} given more than once")
    return values[0]


class OrderedSource(Protocol):
    """Rows kept as a database keeps an indexed table: ids by insertion, and (ms, id) keys sorted on one
    date field (``key_field``), partitioned by one boolean field (``partition_field``)."""

    key_field: str
    partition_field: str

    def __iter__(self) -> Iterator[str]: ...

    def listed(self, row_id: str) -> dict[str, Any]: ...

    def key_range(
        self, partition: bool | None, low: int | None, high: int | None, descending: bool
    ) -> Iterator[tuple[int, str]]: ...


def run_list_query(
    records: list[dict[str, Any]] | OrderedSource,
    params: Mapping[str, list[str]],
    fields: Mapping[str, Field],
    *,
    default_per_page: int = DEFAULT_PER_PAGE,
    term_fields: Sequence[str] = (),
    need_total: bool = True,
) -> tuple[list[dict[str, Any]], int | None, Page]:
    """Filter, sort and page records. Returns (page of records, total matching, page).

    From an ``OrderedSource`` sorted on its key field alone, the rows are read in the index's order, only
    within the bounds the filters put on the key and partition fields, and only as far as the page needs
    (every row when ``need_total``; else the total is None): each run of rows equal on the key is filtered
    and shuffled as a whole, so the page, its order (ties in a fresh order on every call) and every refusal
    are exactly those of filtering, shuffling and sorting every row, which is what happens otherwise."""
    predicates = _compile_each(params.get("filters", []), fields)
    term = single(params, "term")
    page = parse_page(params, default_per_page)
    match_fields = [_field(path, fields) for path in params.get("match", [])]
    sorts = params.get("sort", [])
    sort_keys = parse_sorts(sorts, fields)
    needle = term.lower() if term and match_fields else None

    def keep(record: Mapping[str, Any]) -> bool:
        if not all(predicate(record) for predicate in predicates):
            return False
        # web-toolkit getTextMatches: a term is looked for only in the `match` fields
        return needle is None or any(
            value is not None and needle in str(value).lower()
            for field in match_fields
            for value in field.values(record)
        )

    if isinstance(records, list) or [key.path for key, _ in sort_keys] != [records.key_field]:
        rows = records if isinstance(records, list) else [records.listed(row_id) for row_id in records]
        ordered = sort_records([record for record in rows if keep(record)], sorts, fields)
        return ordered[page.offset : page.offset + page.per_page], len(ordered), page
    descending = sort_keys[0][1]
    partition, low, high = _bounds(predicates, records.key_field, records.partition_field)
    wanted = page.offset + page.per_page
    taken: list[dict[str, Any]] = []
    total = 0
    run: list[dict[str, Any]] = []
    run_key: int | None = None
    for key, row_id in records.key_range(partition, low, high, descending):
        if key != run_key:
            if not need_total and len(taken) + len(run) >= wanted:
                break
            _TIES.shuffle(run)
            total += len(run)
            taken.extend(run[: max(0, wanted - len(taken))])
            run, run_key = [], key
        record = records.listed(row_id)
        if keep(record):
            run.append(record)
    _TIES.shuffle(run)
    total += len(run)
    taken.extend(run[: max(0, wanted - len(taken))])
    return taken[page.offset : wanted], total if need_total else None, page


def _bounds(
    predicates: Sequence[Predicate], key_field: str, partition_field: str
) -> tuple[bool | None, int | None, int | None]:
    """What whole filters that are one condition each say of the key (an inclusive ms range) and the
    partition: every row outside is refused by that filter, so the range holds every row that can match."""
    partition: bool | None = None
    low: int | None = None
    high: int | None = None
    for predicate in predicates:
        if not isinstance(predicate, _Condition) or not isinstance(predicate.wanted, int):
            continue
        path, op, wanted = predicate.field.path, predicate.op, predicate.wanted
        if path == partition_field and op == "==" and isinstance(wanted, bool):
            partition = wanted if partition is None else partition
        elif path == key_field and not isinstance(wanted, bool):
            if op in (">=", ">", "=="):
                bound = wanted + 1 if op == ">" else wanted
                low = bound if low is None else max(low, bound)
            if op in ("<=", "<", "=="):
                bound = wanted - 1 if op == "<" else wanted
                high = bound if high is None else min(high, bound)
    return partition, low, high


def stats_wrapper(results: list[dict[str, Any]], total: int, page: Page) -> dict[str, Any]:
    return {
        "results": results,
        "totalRecords": total,
        "total": total,
        "totalPages": math.ceil(total / page.per_page) if total else 0,
        "page": page.offset // page.per_page + 1,
        "pageSize": page.per_page,
        "meta": {},
    }
