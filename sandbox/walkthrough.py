"""``make demo`` (``python -m sandbox demo``): one interlibrary loan told as staff live it, on the sandbox.

East University Library borrows "The Name of the Rose" from West College Library for one of its patrons. That
is two requests in ReShare with one hrid: east's **borrowing** request and west's **lending** request. The demo
plays the staff of both libraries (ReShare actions, WMS desk check-ins and check-outs) and shows, after each of
their actions, what the bridge did in WMS and ReShare: the new lines of both requests' timelines.

On the way it meets what real days bring: the patron is not yet in east's WMS, so receiving the item fails
with one attention item (and one notice to staff) until staff add the patron and press retry; and the patron
brings the book back to east's WMS desk without anyone touching ReShare (a WMS-first return), which the bridge
notices and passes on to ReShare. It ends with what WMS holds (temp items, holds, loans, the lent item) and
the bridge's mappings, checks every step came out right, and exits 0 only if all did (1 otherwise).

    python -m sandbox demo [--option K=V ...]    (K=V: a WMS simulator switch, as for `sandbox up`)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

PATRON = "EAST-P-7001"  # not in east's WMS at first: the failure staff fix
EAST, WEST = "128807", "262626"  # the libraries' WMS registry ids
PICKUP = "east-main"
DAY = 24 * 3600


class Demo:
    def __init__(self, console: Console, wms_options: dict[str, str]) -> None:
        from sandbox.runtime import Sandbox

        self.console = console
        self.sb = Sandbox(background=False, visibility=1, wms_options=wms_options)
        self.checks: list[tuple[str, bool, str]] = []
        self.shown: dict[str, int] = {}
        self.pair: dict[str, Any] = {}
        self.item = f"WEST-DEMO-{uuid.uuid4().hex[:4].upper()}"
        self._notices: list[dict[str, Any]] = []  # what staff's attention topic got

    # --- the systems, as staff reach them -------------------------------------------------------------------

    def sim(self, system: str, method: str, path: str, **body: Any) -> Any:
        answer = requests.request(
            method, f"{self.sb.urls[system]}/_sim/{path}", json=body or None, timeout=30
        )
        if answer.status_code >= 300:
            raise RuntimeError(f"{system} {method} {path}: {answer.status_code} {answer.text}")
        return answer.json()

    def reshare(self, tenant: str) -> Any:
        from illbridge.config import ReShareSettings
        from illbridge.reshare.client import ReShareClient
        from sandbox.demo import DEMO_LIBRARIES

        demo = DEMO_LIBRARIES[tenant]
        return ReShareClient(
            ReShareSettings(
                base_url=self.sb.urls["reshare"],
                tenant=tenant,
                username=demo["reshare"]["username"],
                password=demo["secrets"]["reshare_password"],
                symbol=demo["reshare"]["symbol"],
            )
        )

    def act(self, tenant: str, request_id: str, action: str, params: dict[str, Any] | None = None) -> None:
        self.reshare(tenant).perform_action(request_id, action, params or {})

    def state(self, tenant: str, request_id: str) -> str:
        return self.reshare(tenant).get_request(request_id).state.code

    def settle(self, rounds: int = 6) -> None:
        """The bridge catches up: the poller reads ReShare, every step queue runs until quiet, the reconciler
        asks WMS (what the schedules and queue pollers of `make run` do every few seconds)."""
        quiet = io.StringIO()  # the functions' metric lines (EMF JSON, printed as Lambda prints them)
        with contextlib.redirect_stdout(quiet):
            for _ in range(rounds):
                self.sb.run_schedule("ReSharePollerFunction")
                processed = self.sb.drain(wait_invisible=True)
                self.sb.run_schedule("WmsReconcilerFunction")
                processed += self.sb.drain(wait_invisible=True)
                if processed == 0:
                    return

    @property
    def services(self) -> Any:
        from illbridge.wiring import current_services

        return current_services()

    # --- telling the story ---------------------------------------------------------------------------------

    def chapter(self, number: int, who: str, what: str) -> None:
        self.console.print()
        self.console.rule(f"[bold]{number}. {who}[/bold]: {what}", align="left")

    def timeline(self) -> None:
        """The lines both requests' timelines gained since last shown."""
        from illbridge_cli import render

        rows = []
        for tenant, side in (("east", "borrower"), ("west", "lender")):
            history = self.services.store.history(tenant, self.pair[side]["id"])
            new = history[self.shown.get(tenant, 0) :]
            self.shown[tenant] = len(history)
            rows += [{**h.model_dump(mode="json"), "step": f"{tenant}: {h.step}"} for h in new]
        if rows:
            rows.sort(key=lambda row: row["at"])
            self.console.print(render.timeline(rows, title="What the bridge did"))
        else:
            self.console.print("[dim]The bridge had nothing to do.[/dim]")

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        self.checks.append((what, ok, detail))
        mark = "[green]ok[/green]  " if ok else "[bold red]WRONG[/bold red]"
        self.console.print(f"  {mark} {what}" + (f" [dim] ({detail})[/dim]" if detail else ""))
        return ok

    # --- the story -----------------------------------------------------------------------------------------

    def run(self) -> bool:
        sb = self.sb
        sb.start()
        for name in ("reshare-wms-bridge", "sandbox.runtime"):  # the story, not the functions' JSON log lines
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            self.console.print(
                Panel(
                    "East University Library ([bold]east[/bold], WMS registry 128807) borrows a book from West "
                    "College Library ([bold]west[/bold], 262626) for one of its patrons. ReShare keeps two "
                    "requests with one hrid: east's borrowing request and west's lending request. The bridge "
                    "keeps each library's WMS in step with them.",
                    title="ReShare <-> WMS bridge: one interlibrary loan, as staff live it",
                )
            )
            self.story()
        finally:
            sb.stop()
        return self.verdict()

    def story(self) -> None:
        sb = self.sb
        self.sim(
            "wms",
            "POST",
            "items",
            registry_id=WEST,
            barcode=self.item,
            branch=WEST,
            title="The Name of the Rose",
        )
        due = (datetime.now(UTC) + timedelta(days=28)).date().isoformat()

        self.chapter(1, "A patron at east", "asks for a book; ReShare finds west can lend it")
        self.pair = self.sim(
            "reshare",
            "POST",
            "requests",
            borrower_tenant="east",
            lender_tenant="west",
            title="The Name of the Rose",
            author="Eco, Umberto",
            patron_barcode=PATRON,
            pickup_location_slug=PICKUP,
            volumes=[{"item_barcode": self.item, "call_number": "PQ4865.C6 N6"}],
            lender_state="RES_AWAIT_PICKING",
            due_date=due,
        )
        hrid = self.pair["hrid"]
        borrower, lender = self.pair["borrower"]["id"], self.pair["lender"]["id"]
        self.console.print(
            f"  request [bold]{hrid}[/bold]: east borrowing, west lending item {self.item}, due {due}"
        )
        self.settle()
        self.timeline()

        self.chapter(2, "West's ILL staff", f"check {self.item} in to ReShare and ship it")
        self.act(
            "west",
            lender,
            "supplierCheckInToReshareAndSupplierMarkShipped",
            {"itemBarcodes": [{"itemId": self.item}]},
        )
        self.settle()
        self.timeline()
        loans = self.loans(WEST, self.item)
        self.check(
            f"west's WMS: {self.item} is checked out to east's ILL account",
            [loan["patron_barcode"] for loan in loans] == ["ILL-EAST"],
            ", ".join(loan["patron_barcode"] for loan in loans),
        )

        self.chapter(3, "East's ILL staff", "receive the book in ReShare")
        self.act("east", borrower, "requesterReceived", {"note": "arrived"})
        self.settle()
        self.timeline()
        items = [i for i in self.services.store.list_attention("east") if i.request_id == borrower]
        self.check(
            "the patron is not in east's WMS yet: one attention item says so",
            len(items) == 1 and PATRON not in items[0].reason and "does not know patron" in items[0].reason,
            items[0].reason if items else "none",
        )
        if items:
            self.console.print(
                f"  [bold]Needs attention[/bold]: {items[0].reason}\n  [bold]Fix[/bold]: {items[0].fix}"
            )
        notices = self.notices(hrid)
        self.check(
            "staff got one notice by mail", len(notices) == 1, notices[0]["Subject"] if notices else "none"
        )

        self.chapter(4, "East's systems staff", "add the patron in WMS and press retry")
        self.sim(
            "wms", "POST", "patrons", registry_id=EAST, barcode=PATRON, expires="2030-12-31", home_branch=EAST
        )
        from illbridge import staff

        with contextlib.redirect_stdout(io.StringIO()):
            retried = staff.retry_request(self.services, hrid, "east")
        self.console.print(
            f"  illbridge retry {hrid}: " + ", ".join(r["step"] for r in retried) + " sent again"
        )
        self.settle()
        self.timeline()
        temps = self.temp_items(hrid)
        holds = self.holds(hrid)
        self.check(
            "east's WMS: a temp item and a hold for the patron at the pickup branch",
            len(temps) == 1 and [(h["status"], h["pickup_branch"]) for h in holds] == [("Pending", EAST)],
            f"{len(temps)} temp item(s), holds {[h['status'] for h in holds]}",
        )
        self.check(
            "the attention item is cleared",
            not [i for i in self.services.store.list_attention("east") if i.request_id == borrower],
        )
        self.check("no second notice", len(self.notices(hrid)) == 1)

        self.chapter(
            5, "East's circulation desk (WMS)", "checks the temp item in (hold ready), lends it to the patron"
        )
        self.sim("wms", "POST", "checkin", barcode=hrid, branch=EAST, registry_id=EAST)
        loan = self.sim("wms", "POST", "checkout", item_barcode=hrid, patron_barcode=PATRON, registry_id=EAST)
        self.console.print(f"  WMS: {hrid} on loan to the patron, due {loan['loan']['due']}")
        sb.advance(DAY)  # a day later the reconciler looks at the loan
        self.console.print(
            "  [dim] (the sandbox's clock moves a day ahead: the reconciler asks WMS about the loan)[/dim]"
        )
        self.settle()
        self.timeline()

        self.chapter(
            6,
            "The patron",
            "brings the book back to east's WMS desk; nobody touches ReShare (a WMS-first return)",
        )
        self.sim("wms", "POST", "checkin", barcode=hrid, branch=EAST, registry_id=EAST)
        sb.advance(2 * DAY)  # the reconciler's next look at the loan
        self.console.print(
            "  [dim] (two days later the reconciler asks WMS again and finds the item checked in)[/dim]"
        )
        self.settle()
        self.timeline()
        self.check(
            "ReShare now says the patron returned it (the bridge told it)",
            self.state("east", borrower) == "REQ_AWAITING_RETURN_SHIPPING",
            self.state("east", borrower),
        )

        self.chapter(7, "East's ILL staff", "ship the book back to west")
        self.act("east", borrower, "shippedReturn")
        self.settle()
        self.timeline()

        self.chapter(8, "West's ILL staff", "receive it and complete the loan in ReShare")
        self.act("west", lender, "supplierCheckOutOfReshare")
        self.settle()
        self.timeline()
        self.check(
            "east's request is complete",
            self.state("east", borrower) == "REQ_REQUEST_COMPLETE",
            self.state("east", borrower),
        )
        self.check(
            "west's request is complete",
            self.state("west", lender) == "RES_COMPLETE",
            self.state("west", lender),
        )

        self.ending(hrid, borrower, lender)

    def ending(self, hrid: str, borrower: str, lender: str) -> None:
        self.chapter(9, "Where everything ended", "WMS and the bridge")
        table = Table(title="WMS", title_justify="left")
        for column in ("library", "what", "barcode", "status"):
            table.add_column(column)
        temps = self.temp_items(hrid)
        for temp in temps:
            table.add_row(
                "east", "temp item", temp["barcode"], f"{temp['status']} at branch {temp['branch']}"
            )
        for hold in self.holds(hrid):
            table.add_row("east", "hold", hold["item_barcode"], hold["status"])
        for registry, barcode, library in ((EAST, hrid, "east"), (WEST, self.item, "west")):
            for loan in self.loans(registry, barcode):
                table.add_row(
                    library,
                    "loan",
                    barcode,
                    f"to {shown(loan['patron_barcode'])}, {'active' if loan['active'] else 'ended'}",
                )
        lent = self.sim("wms", "GET", f"items/{self.item}?registry_id={WEST}")
        table.add_row("west", "lent item", self.item, lent["status"])
        self.console.print(table)
        mappings = Table(title="The bridge's mappings", title_justify="left")
        for column in ("library", "side", "last state it acted on", "items", "open"):
            mappings.add_column(column)
        store = self.services.store
        found = {}
        for tenant, request_id in (("east", borrower), ("west", lender)):
            mapping = store.get_mapping(tenant, request_id)
            found[tenant] = mapping
            if mapping is not None:
                items = ", ".join(
                    f"{i.barcode} ({'checked in' if i.checked_in else 'out'})" for i in mapping.items
                )
                mappings.add_row(
                    tenant, mapping.side.value, mapping.reshare_state, items, "yes" if mapping.open else "no"
                )
        self.console.print(mappings)
        self.check(
            "east's temp item is checked in, home and Unavailable",
            len(temps) == 1 and (temps[0]["status"], temps[0]["branch"]) == ("Unavailable", EAST),
        )
        self.check(
            "no active loan of the temp item or the lent item",
            not [
                loan
                for r, b in ((EAST, hrid), (WEST, self.item))
                for loan in self.loans(r, b)
                if loan["active"]
            ],
        )
        self.check("west's item is back on the shelf", lent["status"] == "Available", lent["status"])
        self.check("both mappings are closed", all(m is not None and not m.open for m in found.values()))
        open_items = [i for t in ("east", "west") for i in store.list_attention(t)]
        self.check(
            "nothing left on the attention list", not open_items, "; ".join(i.reason for i in open_items)
        )

    # --- what WMS and the topic hold ----------------------------------------------------------------------

    def temp_items(self, hrid: str) -> list[dict[str, Any]]:
        return [t for t in self.sim("wms", "GET", f"temp-items?registry_id={EAST}") if t["barcode"] == hrid]

    def holds(self, hrid: str) -> list[dict[str, Any]]:
        return [h for h in self.sim("wms", "GET", f"holds?registry_id={EAST}") if h["item_barcode"] == hrid]

    def loans(self, registry: str, barcode: str) -> list[dict[str, Any]]:
        return [
            loan
            for loan in self.sim("wms", "GET", f"loans?registry_id={registry}")
            if loan["item_barcode"] == barcode
        ]

    def notices(self, hrid: str) -> list[dict[str, Any]]:
        import json

        sqs = self.sb.boto3_client("sqs")
        assert self.sb.resources is not None
        url = self.sb.resources.inboxes["AttentionTopic"]
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") or []
            if not messages:
                break
            for message in messages:
                self._notices.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [n for n in self._notices if str(n.get("Subject", "")).startswith(f"{hrid}: ")]

    def verdict(self) -> bool:
        wrong = [what for what, ok, _ in self.checks if not ok]
        self.console.print()
        if wrong:
            self.console.print(
                f"[bold red]{len(wrong)} of {len(self.checks)} checks went wrong:[/bold red] "
                + "; ".join(wrong)
            )
            return False
        self.console.print(f"[bold green]Every step came out right ({len(self.checks)} checks).[/bold green]")
        return True


def shown(barcode: str) -> str:
    """A patron's barcode as staff see it everywhere (masked to its last characters); accounts stay whole."""
    from illbridge.observability import mask

    return barcode if barcode.startswith("ILL-") else mask(barcode)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--option", action="append", default=[], metavar="K=V", help="a WMS simulator switch")
    args = parser.parse_args(argv)
    from sandbox.wms.options import OptionError, parse_pairs

    try:
        options = parse_pairs(args.option)
    except OptionError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.ERROR)
    # a terminal gets its own width; a pipe or a log file a wide one, so the timeline tables stay readable
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    try:
        ok = Demo(console, options).run()
    except Exception as exc:  # a step that could not even be taken: say which, and fail
        console.print(f"[bold red]The demo could not go on:[/bold red] {type(exc).__name__}: {exc}")
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
