"""illbridge: see what the bridge did to a request, read and clear the attention list, retry, check each
library's configuration, run the poller or reconciler once, count and redrive dead letters.

    illbridge status EAST-12            # where the request is: ReShare state, WMS items, steps, open items
    illbridge history EAST-12           # its timeline: every call to WMS and ReShare, and every decision
    illbridge attention [--library east]
    illbridge retry EAST-12 [--step borrow_received]    # every failed step when no step is named
    illbridge resolve EAST-12 --step lend_shipped        # dealt with by hand: off the list
    illbridge check-config [east]       # exit 1 when anything fails, with the fix for each failure
    illbridge poll-once | reconcile-once
    illbridge dlq | redrive [QUEUE]

By default it works against the sandbox ``make run`` started; ``--stack NAME`` against a deployed stack
(AWS credentials as usual). Requests are named by their ReShare hrid; ``--library`` picks the library when
the hrid is at two (the borrowing request and its lending copy share it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from illbridge_cli import render
from illbridge_cli.target import Target, TargetError
from illbridge_cli.target import resolve as find_target

app = typer.Typer(
    name="illbridge",
    help=__doc__.split("\n\n")[0] if __doc__ else None,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)

LibraryOption = Annotated[
    str | None, typer.Option("--library", "-l", help="the library id (default: the one that knows the hrid)")
]
StepOption = Annotated[str | None, typer.Option("--step", "-s", help="a step name, e.g. borrow_received")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]


class State:
    target: Target | None = None
    options: dict[str, Any] = {}


def target() -> Target:
    if State.target is None:
        State.target = find_target(**State.options)
    return State.target


def services() -> Any:
    target()
    from illbridge.settings import BridgeSettings
    from illbridge.wiring import Services

    return Services.from_settings(BridgeSettings.from_environ())


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/bold red] {message}")
    return typer.Exit(code)


def step_name(value: str | None) -> Any:
    from illbridge.models import StepName

    if value is None:
        return None
    try:
        return StepName(value)
    except ValueError:
        raise fail(f"no step {value!r}: one of {', '.join(s.value for s in StepName)}", 2) from None


def guarded(call: Any) -> Any:
    from illbridge.errors import BridgeError

    try:
        return call()
    except TargetError as exc:
        raise fail(str(exc), 2) from exc
    except BridgeError as exc:
        raise fail(str(exc)) from exc


@app.callback()
def main_options(
    stack: Annotated[str | None, typer.Option(help="a deployed stack's name: read its outputs")] = None,
    region: Annotated[str | None, typer.Option(help="the stack's AWS region")] = None,
    sandbox: Annotated[
        Path | None, typer.Option(help="a sandbox's endpoints file (default: .sandbox/endpoints.json)")
    ] = None,
    env: Annotated[
        bool, typer.Option("--env", help="use the environment's TABLE_NAME, ... as given")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show the bridge's log lines")] = False,
) -> None:
    """What the ReShare <-> WMS bridge did, and what needs a person."""
    os.environ["POWERTOOLS_LOG_LEVEL"] = "DEBUG" if verbose else "WARNING"  # the bridge's log lines
    State.target = None
    State.options = {"stack": stack, "region": region, "sandbox": sandbox, "env": env}


@app.command()
def status(hrid: str, library: LibraryOption = None, as_json: JsonOption = False) -> None:
    """Where a request is: ReShare state, the bridge's mapping and WMS items, its steps and open items."""
    from illbridge import staff

    views = guarded(lambda: staff.request_views(services(), hrid, library))
    if as_json:
        out.print_json(json.dumps([{k: v for k, v in view.items() if k != "history"} for view in views]))
        return
    for view in views:
        out.print(render.request(view, with_history=False))


@app.command()
def history(hrid: str, library: LibraryOption = None, as_json: JsonOption = False) -> None:
    """A request's timeline: time, step, system, operation, outcome, duration, summary."""
    from illbridge import staff

    views = guarded(lambda: staff.request_views(services(), hrid, library))
    if as_json:
        out.print_json(json.dumps({view["library_id"]: view["history"] for view in views}))
        return
    for view in views:
        out.print(render.mapping(view))
        out.print(
            render.timeline(view["history"], title=f"Timeline of {view['hrid']} at {view['library_id']}")
        )


@app.command()
def attention(library: LibraryOption = None, as_json: JsonOption = False) -> None:
    """The attention list, newest first: the reason, the fix and the retry command of each item."""
    from illbridge import staff

    items = [i.model_dump(mode="json") for i in guarded(lambda: staff.attention(services(), library))]
    if as_json:
        out.print_json(json.dumps(items))
        return
    if not items:
        out.print("[green]Nothing needs attention.[/green]")
        return
    out.print(render.attention(items))


@app.command()
def retry(
    hrid: str,
    step: StepOption = None,
    library: LibraryOption = None,
    wait: Annotated[
        float, typer.Option(help="seconds to wait for the step's outcome (0: do not wait)")
    ] = 60.0,
) -> None:
    """Run a failed step again once its cause is fixed (every failed step of the request when none is named)."""
    from illbridge import staff

    chosen = step_name(step)
    svc = services()
    found = guarded(lambda: staff.locate(svc, hrid, library))
    sent = guarded(lambda: staff.retry_request(svc, hrid, found.library_id, chosen))
    for answer in sent:
        released = "released" if answer["released"] else "was not failed"
        out.print(f"{found.hrid}: step {answer['step']} {released}; its trigger is on the bus again")
    if wait <= 0:
        return
    names = [answer["step"] for answer in sent]
    deadline = time.monotonic() + wait
    with err.status(f"waiting for {', '.join(names)} to run ..."):
        while True:
            records = {s.step.value: s for s in svc.store.steps(found.tenant, found.request_id)}
            done = {
                n: records[n].status.value
                for n in names
                if n in records and records[n].status.value in ("SUCCEEDED", "SKIPPED", "FAILED")
            }
            if len(done) == len(names) or time.monotonic() > deadline:
                break
            time.sleep(1)
    still = {i.step: i for i in staff.attention(svc, found.library_id) if i.request_id == found.request_id}
    failed = False
    for name in names:
        outcome = done.get(name)
        if outcome in ("SUCCEEDED", "SKIPPED"):
            out.print(
                f"[green]{name}: {outcome}[/green]" + ("" if name in still else "; off the attention list")
            )
        elif outcome == "FAILED":
            failed = True
            reason = still[name].reason if name in still else ""
            out.print(f"[bold red]{name}: FAILED again[/bold red] {reason}")
        else:
            failed = True
            out.print(
                f"[yellow]{name}: not run yet after {wait:.0f} s[/yellow] (see `illbridge status {hrid}`)"
            )
    if failed:
        raise typer.Exit(1)


@app.command(name="resolve")
def resolve_item(
    hrid: str,
    step: Annotated[str, typer.Option("--step", "-s", help="the step whose item staff dealt with")],
    library: LibraryOption = None,
) -> None:
    """Take an item off the attention list: staff dealt with it by hand."""
    from illbridge import staff

    chosen = step_name(step)
    if guarded(lambda: staff.resolve(services(), hrid, chosen, library)):
        out.print(f"{hrid}: {step} resolved, off the attention list")
        return
    raise fail(f"{hrid} has no open attention item for step {step}")


@app.command(name="check-config")
def check_config(
    library: Annotated[str | None, typer.Argument(help="one library id (default: every library)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Each library's configuration against ReShare and WMS; exit 1 when any check fails."""
    from illbridge import staff

    rows = [f.as_dict() for f in guarded(lambda: staff.check(services(), library))]
    if as_json:
        out.print_json(json.dumps(rows))
    else:
        for table in render.findings(rows):
            out.print(table)
    failed = [r for r in rows if not r["ok"]]
    if failed:
        err.print(
            f"[bold red]{len(failed)} check(s) failed[/bold red]: fix what the table says, then run again"
        )
        raise typer.Exit(1)
    if not as_json:
        by_hand = [r for r in rows if not r.get("checked", True)]
        out.print(
            "[green]every check passed[/green]"
            + (
                f"; [yellow]{len(by_hand)} to check by hand in WMS[/yellow] (see the table)"
                if by_hand
                else ""
            )
        )


def _invoke(function: str) -> dict[str, Any]:
    """Run a deployed function once (``--stack``), as its schedule would."""
    import boto3

    name = target().functions.get(function)
    if not name:
        raise fail(f"the stack has no {function}")
    answer = boto3.client("lambda").invoke(FunctionName=name, Payload=b"{}")
    payload = json.loads(answer["Payload"].read() or b"{}")
    if answer.get("FunctionError"):
        raise fail(f"{function} failed: {payload.get('errorMessage', payload)}")
    return dict(payload)


@app.command(name="poll-once")
def poll_once() -> None:
    """Ask every library's ReShare tenant for changes now (what the poller does every minute)."""
    if guarded(target).kind == "stack":
        out.print_json(json.dumps(_invoke("ReSharePollerFunction")))
        return
    from illbridge.intake.polling import poll_all

    reports = guarded(lambda: poll_all(services().ports))
    table = Table(title="Poll", title_justify="left")
    for column in ("library", "side", "seen", "transitions", "error"):
        table.add_column(column)
    for r in reports:
        table.add_row(r.library_id, str(r.side), str(r.seen), str(r.transitions), r.error or "")
    out.print(table)
    if any(r.error for r in reports):
        raise typer.Exit(1)


@app.command(name="reconcile-once")
def reconcile_once() -> None:
    """Ask WMS now about every open item whose check is due (what the reconciler does every 5 minutes)."""
    if guarded(target).kind == "stack":
        out.print_json(json.dumps(_invoke("WmsReconcilerFunction")))
        return
    from illbridge.intake.reconcile import reconcile_all

    reports = guarded(lambda: reconcile_all(services().ports))
    table = Table(title="Reconciliation", title_justify="left")
    for column in ("library", "checked", "checked in", "waiting", "errors"):
        table.add_column(column, overflow="fold")
    for r in reports:
        table.add_row(
            r.library_id, str(r.checked), ", ".join(r.checked_in), "; ".join(r.waiting), "; ".join(r.errors)
        )
    out.print(table)
    if any(r.errors for r in reports):
        raise typer.Exit(1)


def _sqs() -> Any:
    import boto3

    return boto3.client("sqs")


def _depth(sqs: Any, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _sources(sqs: Any, queues: dict[str, str]) -> dict[str, str]:
    """Dead-letter queue logical id -> the logical id of the queue that sends to it (its RedrivePolicy)."""
    arns = {}
    policies = {}
    for name, url in queues.items():
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"])[
            "Attributes"
        ]
        arns[attributes["QueueArn"]] = name
        if attributes.get("RedrivePolicy"):
            policies[name] = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
    return {arns[dead]: source for source, dead in policies.items() if dead in arns}


WHAT_TO_DO = {
    "ScheduleDeadLetterQueue": "a poll or reconciliation run failed 3 times: fix what `check-config` says, "
    "then `illbridge poll-once` / `reconcile-once`",
    "EventDeliveryDeadLetterQueue": "the bus could not deliver an event: `illbridge retry HRID` for each request",
}


@app.command()
def dlq() -> None:
    """How many messages each dead-letter queue holds."""
    t = guarded(target)
    if not t.queues:
        raise fail("no queues known: use the sandbox or --stack NAME", 2)
    sqs = _sqs()
    sources = _sources(sqs, t.queues)
    table = Table(title="Dead-letter queues", title_justify="left")
    for column in ("queue", "messages", "in flight", "redrive to / what to do"):
        table.add_column(column, overflow="fold")
    total = 0
    for name, url in t.dead_letter_queues().items():
        visible, in_flight = _depth(sqs, url)
        total += visible
        style = "bold red" if visible else "green"
        table.add_row(
            name,
            f"[{style}]{visible}[/{style}]",
            str(in_flight),
            sources.get(name) or WHAT_TO_DO.get(name, ""),
        )
    out.print(table)
    out.print(f"{total} message(s) in dead-letter queues" + (": `illbridge redrive`" if total else ""))


@app.command()
def redrive(
    queue: Annotated[str | None, typer.Argument(help="one dead-letter queue (default: every one)")] = None,
) -> None:
    """Move dead letters back to the queues they came from (each step then runs them again)."""
    t = guarded(target)
    sqs = _sqs()
    sources = _sources(sqs, t.queues)
    chosen = [queue] if queue else [q for q in t.dead_letter_queues() if q in sources]
    unknown = [q for q in chosen if q not in sources]
    if unknown:
        raise fail(
            f"{', '.join(unknown)}: not a step's dead-letter queue ({WHAT_TO_DO.get(unknown[0], '')})", 2
        )
    moved = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err) as bar:
        for name in chosen:
            url, back = t.queues[name], t.queues[sources[name]]
            count, _ = _depth(sqs, url)
            task = bar.add_task(f"{name} -> {sources[name]}", total=count)
            while True:
                messages = (
                    sqs.receive_message(
                        QueueUrl=url,
                        MaxNumberOfMessages=10,
                        MessageAttributeNames=["All"],
                        VisibilityTimeout=60,
                    ).get("Messages")
                    or []
                )
                if not messages:
                    break
                for message in messages:
                    send: dict[str, Any] = {"QueueUrl": back, "MessageBody": message["Body"]}
                    if message.get("MessageAttributes"):
                        send["MessageAttributes"] = message["MessageAttributes"]
                    sqs.send_message(**send)
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    moved += 1
                    bar.update(task, advance=1, total=max(count, bar.tasks[task].completed + 1))
    out.print(f"{moved} message(s) moved back")


def main() -> None:
    app(prog_name="illbridge")


if __name__ == "__main__":
    main()
