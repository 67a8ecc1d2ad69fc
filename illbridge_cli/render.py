"""Rich tables of what the bridge knows: a request, its timeline, the attention list, configuration checks."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from illbridge.staffpage import duration, when

OUTCOME_STYLE = {
    "success": "green",
    "problem": "bold red",
    "error": "yellow",
    "unknown": "magenta",
    "skipped": "dim",
    "info": "cyan",
}
STATUS_STYLE = {
    "SUCCEEDED": "green",
    "SKIPPED": "dim",
    "FAILED": "bold red",
    "RETRYABLE": "yellow",
    "IN_PROGRESS": "cyan",
}


def timeline(history: list[dict[str, Any]], title: str = "Timeline") -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("time (UTC)", "step", "system", "operation", "outcome", "duration", "summary"):
        table.add_column(column, overflow="fold")
    for line in history:
        outcome = str(line.get("outcome", ""))
        table.add_row(
            when(line.get("at")),
            str(line.get("step", "")),
            str(line.get("system", "")),
            str(line.get("operation", "")),
            Text(outcome, style=OUTCOME_STYLE.get(outcome, "")),
            duration(line.get("duration_ms")),
            str(line.get("summary", "")),
        )
    return table


def steps(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Steps", title_justify="left")
    for column in ("step", "status", "attempt", "trigger", "last error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = str(row.get("status", ""))
        table.add_row(
            str(row.get("step", "")),
            Text(status, style=STATUS_STYLE.get(status, "")),
            str(row.get("attempt", "")),
            str(row.get("trigger") or ""),
            str(row.get("last_error") or ""),
        )
    return table


def attention(items: list[dict[str, Any]], title: str = "Attention list (newest first)") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("raised (UTC)", "library", "request", "step", "reason", "fix", "retry"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            when(item.get("raised_at")),
            str(item.get("library_id", "")),
            Text(str(item.get("hrid", "")), style="bold"),
            str(item.get("step", "")),
            Text(str(item.get("reason", "")), style="red"),
            str(item.get("fix", "")),
            Text(str(item.get("retry", "")), style="cyan"),
        )
    return table


def mapping(view: dict[str, Any]) -> Panel:
    m = view.get("mapping") or {}
    lines = [
        f"[bold]{view['hrid']}[/bold]  {view.get('title') or ''}",
        f"library {view['library_id']} ({view.get('library') or ''}), {view['side']}, ReShare state "
        f"[bold]{view['state']}[/bold]",
        f"ReShare request id {view['request_id']}",
    ]
    if not m:
        lines.append("[dim]no mapping yet: no step got as far as WMS[/dim]")
    else:
        who = m.get("patron_barcode") or m.get("borrowing_institution_account") or ""
        lines.append(
            f"WMS registry {m.get('registry_id', '')}, "
            + (f"patron {who}" if m.get("patron_barcode") else f"borrowing library's account {who}")
            + (f", pickup branch {m['pickup_branch']}" if m.get("pickup_branch") else "")
            + (f", lender's due date {when(m['lender_due_date'])}" if m.get("lender_due_date") else "")
        )
        for item in m.get("items") or []:
            flags = [
                label
                for key, label in (("created_in_wms", "in WMS"), ("checked_in", "checked in"))
                if item.get(key)
            ]
            status = f", WMS status {item['wms_status']}" if item.get("wms_status") else ""
            lines.append(f"  item {item.get('barcode', '')}: {', '.join(flags) or 'not yet in WMS'}{status}")
        lines.append("open" if m.get("open", True) else "closed")
    return Panel("\n".join(lines), title="Request", title_align="left")


def request(view: dict[str, Any], *, with_history: bool) -> Group:
    parts: list[Any] = [mapping(view), steps(view.get("steps") or [])]
    if view.get("attention"):
        parts.append(attention(view["attention"], title="Needs attention"))
    if with_history:
        parts.append(timeline(view.get("history") or []))
    return Group(*parts)


def findings(rows: list[dict[str, Any]]) -> list[Table]:
    tables = []
    for library in sorted({r["library_id"] for r in rows}):
        table = Table(title=f"Library {library}", title_justify="left")
        for column in ("check", "", "detail", "fix"):
            table.add_column(column, overflow="fold")
        for row in (r for r in rows if r["library_id"] == library):
            by_hand = row["ok"] and not row.get("checked", True)
            if by_hand:  # nothing the bridge can ask tells: a person checks it (never a silent pass)
                mark = Text("by hand", style="bold yellow")
            else:
                mark = Text("ok", style="green") if row["ok"] else Text("FAIL", style="bold red")
            shown_fix = row.get("fix", "") if by_hand or not row["ok"] else ""
            table.add_row(row["check"], mark, row["detail"], shown_fix)
        tables.append(table)
    return tables
