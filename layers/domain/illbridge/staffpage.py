"""The staff page (``GET /ops/``): server-rendered HTML, no JavaScript. Every value is escaped.

One page: a search by hrid (and library), the attention list (newest first: reason, fix, a Retry button), and
for a searched request its place in ReShare, the WMS items, its steps and its timeline (time, step, system,
operation, outcome, duration, summary). Retry buttons are plain forms posting to
``<base>/requests/{library}/{hrid}/retry``; the API answers 303 back here.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2125;background:#f6f7f9}
header{background:#1f3a5f;color:#fff;padding:.8rem 1.5rem;display:flex;justify-content:space-between;
align-items:center}header h1{margin:0;font-size:1.25rem}header .who{margin:0}header .who a{color:#fff}
main{padding:1rem 1.5rem;max-width:110rem}section{background:#fff;border:1px solid #d9dde3;border-radius:6px;
padding:1rem;margin-bottom:1rem}h2{margin:.2rem 0 .8rem;font-size:1.1rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{text-align:left;vertical-align:top;
padding:.35rem .5rem;border-bottom:1px solid #e6e8eb}th{background:#eef1f5}
.reason{color:#a4161a;font-weight:600}.fix{color:#1d2125}code{font-size:.85rem;background:#f0f2f5;padding:0 .2rem}
.outcome-success{color:#1b7a35}.outcome-problem{color:#a4161a;font-weight:700}.outcome-error{color:#9a6700}
.outcome-unknown{color:#7a2e8e}.outcome-skipped,.outcome-info{color:#57606a}
.status-FAILED{color:#a4161a;font-weight:700}.status-SUCCEEDED{color:#1b7a35}.status-RETRYABLE{color:#9a6700}
.notice{background:#e7f3ff;border:1px solid #9cc9f5;padding:.6rem 1rem;border-radius:6px;margin-bottom:1rem}
.empty{color:#1b7a35}form.inline{display:inline}button{cursor:pointer}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;margin:0}dt{font-weight:600}
"""

# On AWS the page's session: the staff member's StaffUserPool ID token, set by GET /ops/callback and read by the
# ops routes' authorizer (functions/ops_authorizer); Secure, HttpOnly, SameSite=Lax, Path <base>
SESSION_COOKIE = "illbridge_staff"

OUTCOMES = ("success", "problem", "error", "unknown", "skipped", "info")
STATUSES = ("SUCCEEDED", "SKIPPED", "FAILED", "RETRYABLE", "IN_PROGRESS")


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def when(value: Any) -> str:
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def duration(ms: Any) -> str:
    if ms is None:
        return ""
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _retry_form(base: str, library: str, hrid: str, step: str) -> str:
    action = f"{base}/requests/{quote(library, safe='')}/{quote(hrid, safe='')}/retry"
    return (
        f'<form class="inline" method="post" action="{_e(action)}">'
        f'<input type="hidden" name="step" value="{_e(step)}">'
        f'<button type="submit">Retry {_e(step)}</button></form>'
    )


def _search(base: str, libraries: list[tuple[str, str]], library: str | None, hrid: str | None) -> str:
    options = ['<option value="">every library</option>'] + [
        f'<option value="{_e(i)}"{" selected" if i == library else ""}>{_e(name)} ({_e(i)})</option>'
        for i, name in libraries
    ]
    return (
        '<section id="search"><h2>Find a request</h2>'
        f'<form method="get" action="{_e(base)}/">'
        f'<label>Request (hrid) <input name="hrid" value="{_e(hrid or "")}" placeholder="EAST-1234" required></label> '
        f'<label>Library <select name="library">{"".join(options)}</select></label> '
        '<button type="submit">Show</button></form></section>'
    )


def _attention(base: str, items: list[dict[str, Any]], library: str | None) -> str:
    title = f"Needs attention{f' at {_e(library)}' if library else ''} ({len(items)})"
    if not items:
        return (
            f'<section id="attention"><h2>{title}</h2><p class="empty">Nothing needs attention.</p></section>'
        )
    rows = []
    for item in items:
        link = f"{base}/?{urlencode({'library': item['library_id'], 'hrid': item['hrid']})}"
        rows.append(
            "<tr>"
            f"<td>{_e(when(item.get('raised_at')))}</td><td>{_e(item['library_id'])}</td>"
            f'<td><a href="{_e(link)}">{_e(item["hrid"])}</a></td><td>{_e(item["step"])}</td>'
            f'<td class="reason">{_e(item["reason"])}</td><td class="fix">{_e(item["fix"])}</td>'
            f"<td>{_retry_form(base, item['library_id'], item['hrid'], item['step'])}"
            f"<br><code>{_e(item['retry'])}</code></td></tr>"
        )
    return (
        f'<section id="attention"><h2>{title}</h2><table><thead><tr><th>raised (UTC)</th><th>library</th>'
        "<th>request</th><th>step</th><th>what is wrong</th><th>what to do</th><th>then</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _request(base: str, view: dict[str, Any]) -> str:
    mapping = view.get("mapping") or {}
    facts = [
        ("Library", f"{view.get('library') or ''} ({view['library_id']})"),
        ("Side", view["side"]),
        ("ReShare state", view["state"]),
        ("Title", view.get("title") or ""),
    ]
    if mapping:
        who = mapping.get("patron_barcode") or mapping.get("borrowing_institution_account") or ""
        facts += [
            ("WMS registry", mapping.get("registry_id", "")),
            ("Patron" if mapping.get("patron_barcode") else "Borrowing library's account", who),
            ("Pickup branch", mapping.get("pickup_branch") or ""),
            ("Lender's due date", when(mapping.get("lender_due_date"))),
            ("Open", "yes" if mapping.get("open", True) else "no (closed)"),
        ]
        for item in mapping.get("items") or []:
            state = ", ".join(
                label
                for key, label in (("created_in_wms", "in WMS"), ("checked_in", "checked in"))
                if item.get(key)
            )
            status = f", WMS status {item['wms_status']}" if item.get("wms_status") else ""
            facts.append((f"Item {item.get('barcode', '')}", (state or "not yet in WMS") + status))
    else:
        facts.append(("WMS", "no step has reached WMS yet"))
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    attention = ""
    if view.get("attention"):
        rows = "".join(
            f'<tr><td>{_e(a["step"])}</td><td class="reason">{_e(a["reason"])}</td><td class="fix">'
            f"{_e(a['fix'])}</td><td>{_retry_form(base, view['library_id'], view['hrid'], a['step'])}</td></tr>"
            for a in view["attention"]
        )
        attention = (
            '<h3>Needs attention</h3><table class="request-attention"><thead><tr><th>step</th>'
            f"<th>what is wrong</th><th>what to do</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
        )
    steps = "".join(
        f'<tr><td>{_e(s["step"])}</td><td class="status-{_e(s["status"])}">{_e(s["status"])}</td>'
        f"<td>{_e(s.get('attempt'))}</td><td>{_e(s.get('trigger') or '')}</td>"
        f"<td>{_e(s.get('last_error') or '')}</td></tr>"
        for s in view.get("steps") or []
    )
    timeline = "".join(
        f"<tr><td>{_e(when(h.get('at')))}</td><td>{_e(h.get('step'))}</td><td>{_e(h.get('system'))}</td>"
        f"<td>{_e(h.get('operation'))}</td>"
        f'<td class="outcome-{_e(h.get("outcome"))}">{_e(h.get("outcome"))}</td>'
        f"<td>{_e(duration(h.get('duration_ms')))}</td><td>{_e(h.get('summary'))}</td></tr>"
        for h in view.get("history") or []
    )
    anchor = f"request-{_e(view['library_id'])}"
    return (
        f'<section class="request" id="{anchor}"><h2>Request {_e(view["hrid"])} at {_e(view["library_id"])}</h2>'
        f"<dl>{dl}</dl>{attention}"
        "<h3>Steps</h3><table><thead><tr><th>step</th><th>status</th><th>attempt</th><th>trigger</th>"
        f"<th>last error</th></tr></thead><tbody>{steps}</tbody></table>"
        '<h3>Timeline</h3><table class="timeline"><thead><tr><th>time (UTC)</th><th>step</th><th>system</th>'
        "<th>operation</th><th>outcome</th><th>duration</th><th>summary</th></tr></thead>"
        f"<tbody>{timeline}</tbody></table></section>"
    )


def _document(title: str, body: str, signed_in: str | None = None, base: str = "") -> str:
    who = (
        f'<p class="who">{_e(signed_in)} &middot; <a href="{_e(base)}/signout">Sign out</a></p>'
        if signed_in
        else ""
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>ReShare &#8644; WMS bridge: staff</h1>{who}</header><main>{body}</main></body></html>"
    )


def render(
    base: str,
    libraries: list[tuple[str, str]],
    library: str | None,
    hrid: str | None,
    items: list[dict[str, Any]],
    views: list[dict[str, Any]],
    notice: str | None = None,
    signed_in: str | None = None,
) -> str:
    """The page; ``signed_in`` (on AWS: the staff member's e-mail) adds a Sign out link."""
    parts = [f'<p class="notice">{_e(notice)}</p>'] if notice else []
    parts.append(_search(base, libraries, library, hrid))
    parts += [_request(base, view) for view in views]
    parts.append(_attention(base, items, library))
    title = f"{hrid} - bridge staff page" if hrid else "Bridge staff page"
    return _document(title, "".join(parts), signed_in, base)


def error(base: str, message: str, *, link: str = "/", link_text: str = "Back to the staff page") -> str:
    return _document(
        "Bridge staff page",
        f'<p class="notice">{_e(message)}</p><p><a href="{_e(base)}{_e(link)}">{_e(link_text)}</a></p>',
    )
