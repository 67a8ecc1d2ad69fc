"""Time helpers shared by the simulator: epoch milliseconds, ISO 8601 strings, due dates.

mod-rs keeps dates as ``java.util.Date`` (millisecond precision in the database) and renders them in JSON
through grails-views' default date format, ISO-8601 UTC **to the second** (``2026-11-30T08:00:00Z``): see
:func:`iso_seconds`. Filter values are converted by web-toolkit's ``ValueConverterService`` through Grails data
binding, which tries exactly the patterns of mod-rs ``service/grails-app/conf/application.yml``
(``grails.databinding.dateFormats``) and throws the first ``java.text.ParseException`` when none fits: see
:func:`grails_date_ms`.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH_MS = re.compile(r"^-?\d{1,16}$")


def now_ms() -> int:
    """Wall clock in epoch milliseconds."""
    return int(time.time() * 1000)


def iso_from_ms(ms: int, *, millis: bool = True) -> str:
    """`2026-01-02T03:04:05.678Z` (or without the milliseconds)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    text = moment.isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


def iso_seconds(ms: int) -> str:
    """How mod-rs renders a date in JSON: ISO-8601 UTC, to the second, with a ``Z``."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: mod-rs application.yml ``grails.databinding.dateFormats``, in order, as regular expressions.
#: ``X`` (ISO zone: ``Z``, ``+HH``, ``+HHMM``, ``+HH:MM``) and the literal ``'Z'``; a pattern without a zone
#: reads the time in the JVM's zone, UTC in mod-rs's containers. SimpleDateFormat.parse(String) reads from
#: the start and ignores what follows a match; that is kept.
_DATE = r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
_TIME = _DATE + r"T(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
_MILLIS = r"\.(?P<ms>\d{3})"
_ZONE = r"(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)"
_GRAILS_DATE_FORMATS = tuple(
    re.compile(pattern)
    for pattern in (
        _TIME + _ZONE,  # yyyy-MM-dd'T'HH:mm:ssX
        _TIME + _MILLIS + _ZONE,  # yyyy-MM-dd'T'HH:mm:ss.SSSX
        _TIME + "Z",  # yyyy-MM-dd'T'HH:mm:ss'Z'
        _TIME + _MILLIS + "Z",  # yyyy-MM-dd'T'HH:mm:ss.SSS'Z'
        _TIME,  # yyyy-MM-dd'T'HH:mm:ss
        _TIME + _MILLIS,  # yyyy-MM-dd'T'HH:mm:ss.SSS
        _DATE,  # yyyy-MM-dd
    )
)


class UnparseableDate(ValueError):
    """What ``java.text.ParseException`` is to Grails data binding: no configured date format fits."""

    def __init__(self, text: str) -> None:
        super().__init__(f'Unparseable date: "{text}"')
        self.text = text


def grails_date_ms(text: str) -> int:
    """Epoch ms of a filter value as mod-rs's data binding reads a ``Date``; UnparseableDate otherwise.

    An epoch-milliseconds number fits none of the formats and is refused, as mod-rs refuses it.
    """
    for pattern in _GRAILS_DATE_FORMATS:
        match = pattern.match(text)
        if not match:
            continue
        found = {key: value for key, value in match.groupdict().items() if value is not None}
        try:
            moment = datetime(
                int(found["y"]),
                int(found["mo"]),
                int(found["d"]),
                int(found.get("h", 0)),
                int(found.get("mi", 0)),
                int(found.get("s", 0)),
                tzinfo=UTC,
            )
        except ValueError:
            continue  # not lenient: 2026-02-30 fits no pattern
        zone = found.get("zone", "Z")
        if zone != "Z":
            digits = zone[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            moment = moment - offset if zone[0] == "+" else moment + offset
        return int(moment.timestamp()) * 1000 + int(found.get("ms", 0))
    raise UnparseableDate(text)


def ms_from_text(text: str) -> int:
    """Epoch milliseconds from an integer string, an ISO datetime or an ISO date (midnight UTC).

    Raises ValueError when the text is none of those.
    """
    text = text.strip()
    if _EPOCH_MS.match(text):
        return int(text)
    if _DATE_ONLY.match(text):
        return ms_from_date(date.fromisoformat(text))
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_due_date(text: str) -> date:
    """A due date given as `YYYY-MM-DD` (an ISO datetime is accepted and cut to its UTC date)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a due date must be a non-empty string YYYY-MM-DD")
    text = text.strip()
    if _DATE_ONLY.match(text):
        return date.fromisoformat(text)
    return datetime.fromtimestamp(ms_from_text(text) / 1000, UTC).date()


def ms_from_date(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


DEFAULT_LOAN_PERIOD_DAYS = 56  # mod-rs SettingsData `default_loan_period`, default "56"

_ISO_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


def instant_ms(text: object) -> int | None:
    """Epoch ms of a ``loanDateOverride`` as mod-rs reads it (``DateTimeFormatter.ISO_INSTANT``:
    ``2031-05-17T00:00:00Z``, fractions allowed), or None when it does not parse: mod-rs then logs a warning
    and lends for the default loan period (AbstractResponderSupplierCheckInToReshare)."""
    if not isinstance(text, str) or not _ISO_INSTANT.match(text):
        return None
    whole, _, fraction = text[:-1].partition(".")
    try:
        moment = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp()) * 1000 + int((fraction + "000")[:3])


def instant_of_day(day: date) -> str:
    """A calendar date given to the simulator (``due_date`` of ``/_sim/requests``) as the instant staff would
    pick as ``loanDateOverride``: the start of that day, UTC."""
    return f"{day.isoformat()}T00:00:00Z"
