"""The whole bridge on one machine: moto, the two simulators, the template's functions, gateway, schedules, queues.

    sb = Sandbox(gateway_port=0, reshare_port=0, wms_port=0, moto_port=0, tick=None, background=False)
    sb.start()
    sb.urls                      # {"moto", "reshare", "wms", "gateway"}
    sb.invoke("WebhookFunction", event)
    sb.run_schedule("ReSharePollerFunction")
    sb.drain(wait_invisible=True)
    sb.stop()

One sandbox per process at a time: the functions' environment is the process's (``os.environ``), and moto's
backends are process-wide. Starting a second one while one runs raises ``RuntimeError``.

Simulated time: ``sb.advance(seconds)`` moves the sandbox's clock ahead of the machine's. SQS (moto's delays,
visibility timeouts) and the bridge's clock (``Services.clock`` and the store's, so step leases and outage
deadlines) follow it; the simulators keep real time. ``drain(wait_invisible=True)`` advances it to the moment
the next delayed or in-flight step message becomes visible instead of sleeping, so a 12-hour outage runs in
seconds. ``sb.now()`` is the sandbox's time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.template import load_template

from . import aws
from .apart import ServerProcess
from .cfn import Stack
from .functions import (
    Functions,
    FunctionSpec,
    HandlerError,
    cold_start,
    env_value,
    layer_dirs,
    read_functions,
)
from .gateway import Gateway
from .queues import BatchOutcome, QueuePoller, QueueSource, Redelivery
from .scheduler import SCHEDULE_TYPES, Schedule, Scheduler, ScheduleRun

log = logging.getLogger("sandbox.runtime")

ROOT = Path(__file__).resolve().parents[2]
STACK_NAME = "reshare-wms-bridge-local"
REGION = "eu-west-1"
DEFAULT_VISIBILITY = 10

_active_lock = threading.Lock()
_active: Sandbox | None = None


class Sandbox:
    def __init__(
        self,
        *,
        gateway_port: int = 0,
        reshare_port: int = 0,
        wms_port: int = 0,
        moto_port: int = 0,
        tick: float | None = None,
        background: bool = False,
        demo: bool = True,
        relay: bool = False,
        wms_options: dict[str, str] | None = None,
        visibility: int | None = DEFAULT_VISIBILITY,
        time_scale: float | None = None,
        template_path: str | Path | None = None,
        stack_name: str = STACK_NAME,
        region: str = REGION,
        host: str = "127.0.0.1",
        apart: bool = False,
    ) -> None:
        self.ports = {"gateway": gateway_port, "reshare": reshare_port, "wms": wms_port, "moto": moto_port}
        self.tick = tick
        self.background = background
        self.demo = demo
        self.wms_options = dict(wms_options or {})  # WMS simulator switches (sandbox.wms.options)
        self.relay = relay  # the ReShare simulator pushes the demo tenants' state changes to the gateway
        self.visibility = visibility  # overrides every queue's VisibilityTimeout (tests: 1 s); None: keep
        self.time_scale = time_scale  # every timing of the template x this factor (sandbox.timescale)
        self.template_path = Path(template_path) if template_path else ROOT / "template.yaml"
        self.root = self.template_path.resolve().parent
        self.stack_name = stack_name
        self.region = region
        self.host = host
        self.apart = apart  # moto and both simulators in processes of their own (sandbox/runtime/apart.py)
        if apart and relay:
            raise ValueError("the webhook relay needs the ReShare simulator in this process (apart=False)")
        self.urls: dict[str, str] = {}
        self.env: dict[str, str] = {}
        self.stack: Stack | None = None
        self.resources: aws.Provisioned | None = None
        self.functions: Functions | None = None
        self.gateway: Gateway | None = None
        self.scheduler: Scheduler | None = None
        self.pollers: dict[str, QueuePoller] = {}  # "<function>.<event>" -> poller
        self.libraries: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.reshare: Any = None
        self.wms: Any = None
        self._moto: aws.MotoServer | ServerProcess | None = None
        self._clients: dict[str, Any] = {}
        self._saved_env: dict[str, str | None] = {}
        self._saved_path: list[str] | None = None
        self._relay_stop = threading.Event()
        self._relay_thread: threading.Thread | None = None
        self._started = False
        self._spent = False  # started once: threads' stop events are set for good
        self.offset = 0.0  # seconds the simulated clock is ahead of the machine's
        self._moto_time: tuple[Any, Any] | None = None

    # --- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        global _active
        if self._spent:
            raise RuntimeError("this sandbox was started before: create a new Sandbox to start again")
        with _active_lock:
            if _active is not None:
                raise RuntimeError("a sandbox is already running in this process (stop it first)")
            _active = self
        self._started = self._spent = True
        began = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - began
        return self

    def _start(self) -> None:
        mark = time.monotonic()

        def lap(name: str) -> None:
            nonlocal mark
            now = time.monotonic()
            self.timings[name] = now - mark
            mark = now

        template = load_template(self.template_path)
        if self.time_scale is not None:
            from sandbox.timescale import scale_timings

            template = scale_timings(template, self.time_scale)
        if self.apart:
            self._moto = ServerProcess("moto", self.host, self.ports["moto"])
        else:
            self._moto = aws.MotoServer(self.ports["moto"], self.host)
        self.urls["moto"] = self._moto.start()
        self._moto.reset()  # moto's backends are process-wide: start from nothing
        if not self.apart:
            self._simulate_sqs_time()
        lap("moto")

        self.stack = Stack(
            template, stack_name=self.stack_name, region=self.region, sqs_endpoint=self.urls["moto"]
        )
        aws.provision_user_pools(self.stack, self.urls["moto"])  # ids the functions' environment names
        specs = read_functions(self.stack, self.root)
        self.env = self._environment()
        self._apply_env()
        self.resources = aws.provision(self.stack, self.urls["moto"], visibility=self.visibility)
        lap("provision")

        from sandbox.reshare import ReShareSimulator
        from sandbox.wms import WmsSimulator

        if self.apart:
            self.reshare = ServerProcess("reshare", self.host, self.ports["reshare"])
            self.wms = ServerProcess("wms", self.host, self.ports["wms"], self.wms_options)
        else:
            self.reshare = ReShareSimulator(host=self.host, port=self.ports["reshare"])
            self.wms = WmsSimulator(host=self.host, port=self.ports["wms"], options=self.wms_options)
        self.urls["reshare"] = self.reshare.start()
        self.urls["wms"] = self.wms.start()
        if self.demo:
            self.reshare.seed_demo()
            self.wms.seed_demo()
        lap("simulators")

        if self.demo:
            from sandbox.demo import seed_libraries

            self.libraries = seed_libraries(
                self.boto3_client("ssm"),
                self.boto3_client("secretsmanager"),
                self.env.get("CONFIG_PREFIX", "/reshare-wms-bridge"),
                self.urls["reshare"],
                self.urls["wms"],
            )
            self._check_config()
        lap("demo")

        self.functions = Functions(specs, self.env, uuid.uuid4().hex[:8])
        self.functions.load_all()
        self._simulate_bridge_time()
        self._wire(specs)
        lap("functions")

        api_events = [e for s in specs.values() for e in s.events if e.type == "Api"]
        self.gateway = Gateway(
            api_events,
            self.functions,
            host=self.host,
            port=self.ports["gateway"],
            account_id=self.stack.account_id,
            api_id=self.stack.api_id,
        )
        self.urls["gateway"] = self.gateway.start()
        if self.relay and self.demo:
            self.connect_relay()
        lap("gateway")

        if self.background:
            assert self.scheduler is not None
            self.scheduler.start()
            for poller in self.pollers.values():
                if poller.source.enabled:
                    poller.start()
            self._relay_thread = threading.Thread(
                target=self._relay_loop, name="sandbox-sns-relay", daemon=True
            )
            self._relay_thread.start()
        lap("background")

    def connect_relay(self) -> list[str]:
        """Make the ReShare simulator push every demo tenant's state changes to ``POST /webhooks/reshare``,
        signed with that library's webhook secret, as a site's Kafka-to-HTTP relay would (docs/reshare.md#events)."""
        from sandbox.demo import WEBHOOK_SECRETS

        url = f"{self.urls['gateway']}/webhooks/reshare"
        tenants = []
        for library_id, config in self.libraries.items():
            self.reshare.relay.configure(config.reshare.tenant, url, WEBHOOK_SECRETS[library_id])
            tenants.append(config.reshare.tenant)
        return tenants

    def _environment(self) -> dict[str, str]:
        """What every function gets: the template's Globals environment (resolved) and the local AWS settings."""
        assert self.stack is not None
        globals_ = (self.stack.template.get("Globals") or {}).get("Function") or {}
        variables = ((globals_.get("Environment") or {}).get("Variables")) or {}
        return {
            **{
                key: env_value(self.stack.resolve(value, f"Globals.Environment.{key}"))
                for key, value in variables.items()
            },
            "AWS_ENDPOINT_URL": self.urls["moto"],
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **aws.FAKE_CREDENTIALS,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SAM_LOCAL": "true",  # as sam local sets it: Powertools Tracer stays quiet
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    def function_env(self, logical_id: str) -> dict[str, str]:
        """The environment one function runs with: the shared one plus its own Environment."""
        return {**self.env, **self.function(logical_id).environment}

    def _apply_env(self) -> None:
        assert self.stack is not None
        for key, value in self.env.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        # the layer's code is what Lambda mounts under /opt/python: importable by every function
        import sys

        self._saved_path = list(sys.path)
        for directory in reversed(layer_dirs(self.stack, self.root)):
            if str(directory) not in sys.path:
                sys.path.insert(0, str(directory))
        cold_start(self._layer_packages())

    def _layer_packages(self) -> list[str]:
        assert self.stack is not None
        return sorted(
            child.name
            for directory in layer_dirs(self.stack, self.root)
            if directory.is_dir()
            for child in directory.iterdir()
            if (child / "__init__.py").exists()
        )

    def _check_config(self) -> None:
        """Read the demo configuration back the way the functions do (a wrong layout fails here)."""
        from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

        from illbridge.config import ConfigStore

        def read(scope: str) -> dict[str, Any]:
            store = ConfigStore(
                self.env.get("CONFIG_PREFIX", "/reshare-wms-bridge"),
                max_age=0,
                ssm=SSMProvider(boto3_client=self.boto3_client("ssm")),
                secrets=SecretsProvider(boto3_client=self.boto3_client("secretsmanager")),
                scope=scope,
            )
            return {config.library_id: config for config in store.all()}

        # the steps' view (library secret) and the webhook's (webhook secret), merged, are the demo libraries
        library, webhook = read("library"), read("webhook")
        merged = {
            library_id: config.model_copy(update={"webhook_secrets": webhook[library_id].webhook_secrets})
            for library_id, config in library.items()
            if library_id in webhook
        }
        if merged != self.libraries or any(c.wms.wskey_secret.get_secret_value() for c in webhook.values()):
            raise RuntimeError(f"demo configuration reads back differently: {sorted(merged)}")

    def _wire(self, specs: dict[str, FunctionSpec]) -> None:
        assert self.stack is not None and self.resources is not None and self.functions is not None
        queues_by_arn = {q.arn: q for q in self.resources.queues.values()}
        schedules: list[Schedule] = []
        for spec in specs.values():
            for event in spec.events:
                if event.type == "SQS":
                    source = QueueSource.from_event(event, queues_by_arn)
                    self.pollers[f"{spec.logical_id}.{event.name}"] = QueuePoller(
                        source, self.functions, self.boto3_client("sqs"), self.region
                    )
                elif event.type in SCHEDULE_TYPES:
                    schedules.append(Schedule.from_event(event, self.stack))
                elif event.type != "Api":
                    log.warning(
                        "%s.%s: %s events are not run by the sandbox", spec.logical_id, event.name, event.type
                    )
        self.scheduler = Scheduler(
            schedules,
            self.functions,
            self.stack,
            self.boto3_client("sqs"),
            {q.arn: q.url for q in self.resources.queues.values()},
            tick=self.tick,
        )

    def _relay_loop(self) -> None:
        """Background: deliver SNS-targeted bus events, and log what reaches the topics' inboxes."""
        assert self.resources is not None
        sqs, sns = self.boto3_client("sqs"), self.boto3_client("sns")
        while not self._relay_stop.wait(1):
            try:
                aws.pump_relays(sqs, sns, self.resources.relays)
                for topic, url in self.resources.inboxes.items():
                    for message in (
                        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") or []
                    ):
                        log.warning("%s: %s", topic, _sns_message(message["Body"]))
                        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            except Exception as exc:
                if self._relay_stop.is_set():
                    return
                log.error("sns relay: %s", exc)

    def stop(self) -> None:
        """Stop everything started, free every port, join every thread, restore the environment."""
        global _active
        if not self._started:
            return
        errors: list[BaseException] = []

        def attempt(action: Any) -> None:
            try:
                action()
            except Exception as exc:
                errors.append(exc)
                log.error("stopping: %s", exc)

        # ask every background thread to stop first, then wait for each (they stop in parallel)
        self._relay_stop.set()
        if self.scheduler is not None:
            self.scheduler.request_stop()
        for poller in self.pollers.values():
            poller.request_stop()
        if self._relay_thread is not None:
            attempt(lambda: self._relay_thread.join(10))  # type: ignore[union-attr]
            self._relay_thread = None
        if self.scheduler is not None:
            attempt(self.scheduler.stop)
        for poller in self.pollers.values():
            attempt(poller.stop)
        if self.gateway is not None:
            attempt(self.gateway.stop)
            self.gateway = None
        for sim in (self.reshare, self.wms):
            if sim is not None:
                attempt(sim.stop)
        self.reshare = self.wms = None
        if self._moto is not None:
            attempt(self._moto.reset)
            attempt(self._moto.stop)
            self._moto = None
        self._real_sqs_time()
        if self.functions is not None:
            self.functions.unload_all()
        for client in self._clients.values():
            attempt(client.close)
        self._clients.clear()
        self._restore_env()
        self._started = False
        with _active_lock:
            if _active is self:
                _active = None

    def _restore_env(self) -> None:
        for key, old in self._saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._saved_env = {}
        if self._saved_path is not None:
            import sys

            sys.path[:] = self._saved_path
            self._saved_path = None
        if self.stack is not None:
            cold_start(self._layer_packages())

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- simulated time -----------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The sandbox's time: the machine's plus what ``advance`` added."""
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def advance(self, seconds: float) -> None:
        """Move the simulated clock ahead (SQS delays and visibility, the bridge's clock; see the module)."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        if self.apart:
            raise RuntimeError("simulated time needs moto in the sandbox's process (apart=False)")
        self.offset += seconds

    def _simulate_sqs_time(self) -> None:
        """moto's SQS reads the time through two functions of its module: give them the simulated clock."""
        import moto.sqs.models as sqs_models

        real_s, real_ms = sqs_models.unix_time, sqs_models.unix_time_millis
        self._moto_time = (real_s, real_ms)

        def unix_time(dt: datetime | None = None) -> float:
            return real_s(dt) if dt is not None else real_s() + self.offset

        def unix_time_millis(dt: datetime | None = None) -> float:
            return real_ms(dt) if dt is not None else real_ms() + self.offset * 1000

        sqs_models.unix_time = unix_time  # type: ignore[assignment]
        sqs_models.unix_time_millis = unix_time_millis  # type: ignore[assignment]

    def _real_sqs_time(self) -> None:
        if self._moto_time is not None:
            import moto.sqs.models as sqs_models

            sqs_models.unix_time, sqs_models.unix_time_millis = self._moto_time
            self._moto_time = None

    def _simulate_bridge_time(self) -> None:
        """The functions' shared services (one per process here) read the simulated clock."""
        from illbridge.wiring import current_services

        services = current_services()
        services.clock = self.now
        services.store._clock = self.now

    def _next_visible_in(self, pollers: list[QueuePoller]) -> float | None:
        """Seconds until the next delayed or in-flight message of these queues becomes visible; None if none."""
        import moto.sqs.models as sqs_models

        assert self.stack is not None
        backend = sqs_models.sqs_backends[self.stack.account_id][self.region]
        names = {p.source.queue_url.rsplit("/", 1)[-1] for p in pollers}
        now_ms = sqs_models.unix_time_millis()
        due = [
            max(message.delayed_until, message.visible_at)
            for name in names
            if name in backend.queues
            for message in list(backend.queues[name]._messages)
            if message.delayed or not message.visible
        ]
        return max(0.0, (min(due) - now_ms) / 1000) if due else None

    # --- what tests and people use ------------------------------------------------------------------------

    def boto3_client(self, service: str) -> Any:
        """A boto3 client for moto (shared per service; boto3 clients are thread-safe)."""
        if service not in self._clients:
            self._clients[service] = aws.client(service, self.urls["moto"], self.region)
        return self._clients[service]

    def physical_name(self, logical_id: str) -> str:
        assert self.stack is not None, "start() first"
        return self.stack.physical_name(logical_id)

    def queue_url(self, logical_id: str) -> str:
        assert self.resources is not None, "start() first"
        return self.resources.queues[logical_id].url

    def function(self, logical_id: str) -> FunctionSpec:
        """The loaded function (``.module`` is its handler module: replace ``.module.handler`` in tests)."""
        assert self.functions is not None, "start() first"
        return self.functions.specs[logical_id]

    def invoke(self, function_logical_id: str, event: Any) -> Any:
        """Call the handler in-process with a Lambda-like context: its result, or ``HandlerError``."""
        assert self.functions is not None, "start() first"
        return self.functions.invoke(function_logical_id, event)

    def run_schedule(self, function_logical_id: str, event: str | None = None) -> ScheduleRun:
        """Fire the function's schedule once, now: retries per the function's EventInvokeConfig without waiting,
        then the invocation record to its OnFailure queue (``ScheduleRun.record``)."""
        assert self.scheduler is not None, "start() first"
        return self.scheduler.fire(self.scheduler.for_function(function_logical_id, event))

    def poll(self, function_logical_id: str) -> BatchOutcome:
        """One poll of the function's queue (one batch, if any), as the event source mapping does."""
        pollers = [p for p in self.pollers.values() if p.source.function == function_logical_id]
        if not pollers:
            raise KeyError(f"{function_logical_id} has no SQS event source")
        return pollers[0].poll_once(batching_window=False)

    def redeliver(self, copies: int = 2, max_delay: int = 300, seed: int | None = None) -> Redelivery:
        """Switch at-least-once, unordered delivery on for every step queue (:class:`Redelivery`): each event
        reaches its queue ``copies`` times, each copy delayed at random up to ``max_delay`` seconds."""
        redelivery = Redelivery(copies=copies, max_delay=max_delay, seed=seed)
        for poller in self.pollers.values():
            poller.redelivery = redelivery
        return redelivery

    def deliver_once(self) -> None:
        """Switch :meth:`redeliver` off: each event is delivered as moto delivers it (once, in order)."""
        for poller in self.pollers.values():
            poller.redelivery = None

    def pump_sns(self) -> int:
        """Deliver bus events that rules target at SNS topics (moto does not): the count published."""
        assert self.resources is not None, "start() first"
        return aws.pump_relays(self.boto3_client("sqs"), self.boto3_client("sns"), self.resources.relays)

    def drain(self, max_rounds: int = 50, wait_invisible: bool = False, window: float = 0.0) -> int:
        """Invoke queue-triggered functions until every step queue is empty; the messages processed.

        Each round polls every enabled queue source until it receives nothing. Messages that are in flight
        (failed and waiting out their visibility timeout) are waited for only with ``wait_invisible``; they
        then come back (or SQS moves them to their dead-letter queue after maxReceiveCount receives). Waiting
        moves simulated time to the next such message, plus ``window`` seconds: messages due within the window
        are run in one round (many delayed copies, ``redeliver``, need far fewer rounds).
        """
        processed = 0
        pollers = [p for p in self.pollers.values() if p.source.enabled]
        for _ in range(max_rounds):
            this_round = 0
            for poller in pollers:
                while True:
                    outcome = poller.poll_once(batching_window=False)
                    if not outcome.received:
                        break
                    this_round += outcome.received
            self.pump_sns()
            processed += this_round
            if this_round:
                continue
            if not wait_invisible or not self._wait_visible(pollers, window):
                break
        return processed

    def _wait_visible(self, pollers: list[QueuePoller], window: float = 0.0) -> bool:
        """Move simulated time to when a delayed or in-flight step message is visible; False if none is."""
        wait = self._next_visible_in(pollers)
        if wait is None:
            return False
        self.advance(wait + 0.01 + window)
        return True

    def redrive(self, dead_letter_logical_id: str, destination_logical_id: str | None = None) -> int:
        """Move every message of a dead-letter queue back to its source queue; the count moved.

        ``StartMessageMoveTask`` when moto implements it, else receive, send to the source, delete.
        """
        assert self.resources is not None, "start() first"
        sqs = self.boto3_client("sqs")
        dead = self.resources.queues[dead_letter_logical_id]
        destination = destination_logical_id or self._redrive_source(dead.arn)
        target = self.resources.queues[destination]
        if _moto_moves_messages():
            before = _count(sqs, dead.url)
            sqs.start_message_move_task(SourceArn=dead.arn, DestinationArn=target.arn)
            return before
        moved = 0
        while True:
            answer = sqs.receive_message(
                QueueUrl=dead.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=30
            )
            messages = answer.get("Messages") or []
            if not messages:
                return moved
            for message in messages:
                kwargs: dict[str, Any] = {"QueueUrl": target.url, "MessageBody": message["Body"]}
                if message.get("MessageAttributes"):
                    kwargs["MessageAttributes"] = message["MessageAttributes"]
                sqs.send_message(**kwargs)
                sqs.delete_message(QueueUrl=dead.url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1

    def _redrive_source(self, dead_letter_arn: str) -> str:
        import json

        assert self.resources is not None
        sources = [
            q.logical_id
            for q in self.resources.queues.values()
            if "RedrivePolicy" in q.attributes
            and json.loads(q.attributes["RedrivePolicy"]).get("deadLetterTargetArn") == dead_letter_arn
        ]
        if len(sources) != 1:
            raise ValueError(
                f"{dead_letter_arn} is the dead-letter queue of {sources or 'no queue'}: name one"
            )
        return sources[0]

    def endpoints(self) -> dict[str, Any]:
        """Where everything is, as ``illbridge`` reads it (``.sandbox/endpoints.json``, written by ``make run``):
        the functions' environment (tables, bus, topic, configuration prefix, moto as the AWS endpoint), the
        URLs, and every queue by logical id."""
        assert self.resources is not None, "start() first"
        return {
            "stack_name": self.stack_name,
            "region": self.region,
            "pid": os.getpid(),
            "urls": dict(self.urls),
            "env": dict(self.env),
            "queues": {name: queue.url for name, queue in sorted(self.resources.queues.items())},
        }

    def write_endpoints(self, path: str | Path) -> Path:
        """Write :meth:`endpoints` to ``path`` (readable by this user only: it holds the local credentials)."""
        import json

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".tmp")
        partial.write_text(json.dumps(self.endpoints(), indent=2) + "\n")
        partial.chmod(0o600)
        partial.replace(target)
        return target

    def banner(self) -> str:
        from .banner import render

        return render(self)


def _counts(sqs: Any, url: str) -> dict[str, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return {k: int(v) for k, v in attributes.items()}


def _count(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _moto_moves_messages() -> bool:
    from moto.sqs.responses import SQSResponse

    return hasattr(SQSResponse, "start_message_move_task")


def _sns_message(body: str) -> str:
    import json

    try:
        return str(json.loads(body).get("Message", body))
    except (ValueError, AttributeError):
        return body


__all__ = ["HandlerError", "Sandbox"]
