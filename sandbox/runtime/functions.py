"""The template's functions, run in-process: handler loading, environment, a Lambda-like context, invoke.

Every ``AWS::Serverless::Function`` is read from the template (CodeUri, Handler, Timeout, MemorySize,
Environment merged over ``Globals``, ReservedConcurrentExecutions, Events). Handler modules are all called
``app.py``, so each is imported from its file under a module name of its own.

Execution environments, as Lambda runs them: an invocation runs in an environment nobody else is using at the
time, with its own instance of the handler module (so its own module-level globals: a step's
handler, an ``APIGatewayRestResolver`` and its ``current_event``). A free environment is reused (a
warm start); when every environment of a function is busy a new one is made (a cold start: the handler module
is executed again), up to ``ReservedConcurrentExecutions`` (further invocations wait, where Lambda throttles).
The layer's packages (``illbridge``, Powertools, boto3) are imported once per process and shared by every
environment: what they cache (settings, clients, configuration) is the same for every environment, and
what they keep per invocation must not live in their module globals (docs/sandbox.md, "Execution
environments").

``FunctionSpec.module`` is the first environment's module. The handler attribute is looked up at every
invocation; a test that replaces it there (``monkeypatch.setattr(spec.module, "handler", ...)``) replaces it
for every environment, as deploying new code would.

The environment is process-wide: what every function shares (``Globals``) is put into ``os.environ`` when the
sandbox starts; a function whose own ``Environment`` adds or changes variables gets them around its call, under
a lock (such functions then run one at a time).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from .cfn import Stack

log = logging.getLogger("sandbox.runtime")

FUNCTION_TYPES = ("AWS::Serverless::Function",)


class HandlerError(Exception):
    """A handler raised (or could not be loaded, or ran past its timeout): Lambda's function error."""

    def __init__(self, function: str, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(f"{function}: {error_type}: {message}")
        self.function = function
        self.error_type = error_type
        self.error_message = message
        self.stack_trace = stack or []

    def payload(self) -> dict[str, Any]:
        """What Lambda answers a synchronous Invoke with when the function fails."""
        return {
            "errorMessage": self.error_message,
            "errorType": self.error_type,
            "requestId": "",
            "stackTrace": self.stack_trace,
        }


@dataclass(frozen=True)
class EventSource:
    function: str  # logical id of the function
    name: str  # the event's id under Events
    type: str  # Api, Schedule, ScheduleV2, SQS, ...
    properties: dict[str, Any]  # resolved


@dataclass
class FunctionSpec:
    logical_id: str
    function_name: str
    arn: str
    code_dir: Path
    handler: str  # "module.attribute"
    timeout: float
    memory_size: int
    environment: dict[str, str]  # Globals + the function's own, resolved
    reserved_concurrency: int | None
    events: list[EventSource]
    module: ModuleType | None = None  # the first environment's handler module
    load_error: HandlerError | None = None
    _limit: threading.BoundedSemaphore | None = field(default=None, repr=False)
    # the execution environments: every one made, the free ones (reused last-in first-out, as Lambda keeps
    # its most recently used instances warm), and what the first one's handler attribute was when loaded
    environments: list[ModuleType] = field(default_factory=list, repr=False)
    _free: list[ModuleType] = field(default_factory=list, repr=False)
    _loaded_handler: Any = field(default=None, repr=False)
    _pool_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class LambdaContext:
    """The context object the Python runtime passes handlers (the same attributes and method)."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.function_name = spec.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = str(spec.memory_size)  # the runtime reads it from the environment: a str
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.function_name}"
        self.log_stream_name = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + spec.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def read_functions(stack: Stack, root: Path) -> dict[str, FunctionSpec]:
    """Every serverless function of the template, with its environment and events resolved."""
    template = stack.template
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    global_env = ((globals_.get("Environment") or {}).get("Variables")) or {}
    specs: dict[str, FunctionSpec] = {}
    for logical_id, resource in stack.resources.items():
        if not isinstance(resource, dict) or resource.get("Type") not in FUNCTION_TYPES:
            continue
        props = resource.get("Properties") or {}

        def prop(name: str, default: Any, props: dict[str, Any] = props) -> Any:
            return props.get(name, globals_.get(name, default))

        env_raw = {**global_env, **(((props.get("Environment") or {}).get("Variables")) or {})}
        environment = {
            key: env_value(stack.resolve(value, f"{logical_id}.Environment.{key}"))
            for key, value in env_raw.items()
        }
        code_uri = stack.resolve(prop("CodeUri", "."), f"{logical_id}.CodeUri")
        if not isinstance(code_uri, str):
            raise ValueError(f"{logical_id}: CodeUri must be a local directory for the sandbox")
        events = [
            EventSource(
                function=logical_id,
                name=name,
                type=str(event.get("Type")),
                properties=stack.resolve(event.get("Properties") or {}, f"{logical_id}.Events.{name}"),
            )
            for name, event in (props.get("Events") or {}).items()
        ]
        reserved = props.get("ReservedConcurrentExecutions")
        spec = FunctionSpec(
            logical_id=logical_id,
            function_name=stack.physical_name(logical_id),
            arn=stack.arn(logical_id),
            code_dir=(root / code_uri).resolve(),
            handler=str(prop("Handler", "app.handler")),
            timeout=float(stack.resolve(prop("Timeout", 3))),
            memory_size=int(stack.resolve(prop("MemorySize", 128))),
            environment=environment,
            reserved_concurrency=int(stack.resolve(reserved)) if reserved is not None else None,
            events=events,
        )
        if spec.reserved_concurrency:
            spec._limit = threading.BoundedSemaphore(spec.reserved_concurrency)
        specs[logical_id] = spec
    return specs


def layer_dirs(stack: Stack, root: Path) -> list[Path]:
    """The local directories of the template's layers (what Lambda mounts under /opt/python)."""
    dirs = []
    for logical_id, resource in stack.resources_of("AWS::Serverless::LayerVersion").items():
        content = stack.resolve((resource.get("Properties") or {}).get("ContentUri"), logical_id)
        if isinstance(content, str):
            dirs.append((root / content).resolve())
    return dirs


def cold_start(packages: list[str]) -> None:
    """Forget what warm function instances cached: ``lru_cache``s of the layer's packages, boto3's session.

    The functions share the process (and the layer's modules) with the caller; a new sandbox must not reuse
    clients built for a previous one's endpoint and environment.
    """
    for name, module in list(sys.modules.items()):
        if module is None or not any(name == p or name.startswith(p + ".") for p in packages):
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and getattr(value, "__module__", None) == name:
                clear()
    import boto3

    boto3.DEFAULT_SESSION = None


class Functions:
    """Loads and invokes the template's functions."""

    def __init__(self, specs: dict[str, FunctionSpec], shared_env: Mapping[str, str], tag: str) -> None:
        self.specs = specs
        self.shared_env = dict(shared_env)
        self._tag = tag
        self._env_lock = threading.RLock()
        # the latest (function, seconds, outcome) triples: for the curious
        self.invocations: deque[tuple[str, float, str]] = deque(maxlen=1000)

    def load_all(self) -> None:
        for spec in self.specs.values():
            self.load(spec)

    def load(self, spec: FunctionSpec) -> None:
        """Make the function's first execution environment (an import error is kept for every invoke)."""
        self._drop_environments(spec)
        try:
            module = self._new_environment(spec)
        except HandlerError as exc:
            spec.module = None
            spec.load_error = exc
            return
        spec.module = module
        spec.load_error = None
        spec._loaded_handler = getattr(module, spec.handler.rpartition(".")[2], None)
        with spec._pool_lock:
            spec._free.append(module)

    def _new_environment(self, spec: FunctionSpec) -> ModuleType:
        """A fresh instance of the handler module, under a module name of its own (a cold start)."""
        module_name, _, _ = spec.handler.rpartition(".")
        path = spec.code_dir / (module_name.replace(".", "/") + ".py")
        with spec._pool_lock:
            number = len(spec.environments)
        unique = f"_sandbox_{self._tag}_{spec.logical_id}_{number}_{module_name.replace('.', '_')}"
        try:
            module_spec = importlib.util.spec_from_file_location(unique, path)
            if module_spec is None or module_spec.loader is None:
                raise ImportError(f"no module at {path}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[unique] = module
            with self._function_env(spec):
                module_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(unique, None)
            log.error("%s: cannot load %s: %s", spec.logical_id, path, exc)
            raise HandlerError(
                spec.logical_id,
                "Runtime.ImportModuleError",
                f"Unable to import module '{module_name}': {exc}",
                traceback.format_exception(exc),
            ) from exc
        with spec._pool_lock:
            spec.environments.append(module)
        return module

    def _drop_environments(self, spec: FunctionSpec) -> None:
        with spec._pool_lock:
            for module in spec.environments:
                sys.modules.pop(module.__name__, None)
            spec.environments.clear()
            spec._free.clear()

    @contextmanager
    def _environment(self, spec: FunctionSpec) -> Iterator[ModuleType]:
        """An execution environment no other invocation uses until this one ends: a free one, or a new one."""
        with spec._pool_lock:
            module = spec._free.pop() if spec._free else None
        if module is None:
            module = self._new_environment(spec)
        try:
            yield module
        finally:
            with spec._pool_lock:
                spec._free.append(module)

    def unload_all(self) -> None:
        for spec in self.specs.values():
            self._drop_environments(spec)
            spec.module = None

    @staticmethod
    def _handler(spec: FunctionSpec, module: ModuleType, attribute: str) -> Any:
        """The environment's handler, unless the first environment's was replaced (new code for all)."""
        replaced = getattr(spec.module, attribute, None)
        if replaced is not spec._loaded_handler:
            return replaced
        return getattr(module, attribute, None)

    def extra_env(self, spec: FunctionSpec) -> dict[str, str]:
        return {k: v for k, v in spec.environment.items() if self.shared_env.get(k) != v}

    @contextmanager
    def _function_env(self, spec: FunctionSpec) -> Iterator[None]:
        extra = self.extra_env(spec)
        if not extra:
            yield
            return
        with self._env_lock:
            saved = {k: os.environ.get(k) for k in extra}
            os.environ.update(extra)
            try:
                yield
            finally:
                for key, old in saved.items():
                    if old is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = old

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Call the function's handler with ``event`` and a fresh context; its result, or HandlerError."""
        spec = self.specs.get(logical_id)
        if spec is None:
            raise KeyError(f"no function {logical_id!r} in the template (known: {', '.join(self.specs)})")
        if spec.load_error is not None:
            raise spec.load_error
        assert spec.module is not None
        module_name, _, attribute = spec.handler.rpartition(".")
        context = LambdaContext(spec)
        started = time.monotonic()
        if spec._limit is not None:
            spec._limit.acquire()
        try:
            with self._environment(spec) as module:
                handler = self._handler(spec, module, attribute)
                if not callable(handler):
                    raise HandlerError(
                        logical_id,
                        "Runtime.HandlerNotFound",
                        f"Handler '{attribute}' missing on module '{module_name}'",
                    )
                with self._function_env(spec):
                    result = handler(event, context)
        except HandlerError:
            raise
        except Exception as exc:
            elapsed = time.monotonic() - started
            self.invocations.append((logical_id, elapsed, "error"))
            log.error(
                "%s (request %s) failed after %.2fs: %s: %s",
                logical_id,
                context.aws_request_id,
                elapsed,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            raise HandlerError(
                logical_id, type(exc).__name__, str(exc), traceback.format_exception(exc)
            ) from exc
        finally:
            if spec._limit is not None:
                spec._limit.release()
        elapsed = time.monotonic() - started
        if elapsed > spec.timeout:
            self.invocations.append((logical_id, elapsed, "timeout"))
            message = f"Task timed out after {spec.timeout:.2f} seconds"
            log.error(
                "%s (request %s): %s (took %.2fs)", logical_id, context.aws_request_id, message, elapsed
            )
            raise HandlerError(logical_id, "Sandbox.Timedout", message)
        self.invocations.append((logical_id, elapsed, "ok"))
        return result
