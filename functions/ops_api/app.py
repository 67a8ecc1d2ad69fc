"""The ops API and the staff page (behind StaffUserPool on AWS; open on the sandbox's loopback gateway).

- ``GET /ops/`` -> the staff page (HTML, no JavaScript): the attention list, a search by hrid, a request's
  timeline (``?hrid=EAST-12[&library=east]``), a Retry button per failed step;
- ``GET /ops/requests/{library}/{hrid}`` -> JSON: the request (ReShare state, mapping, steps, history, items);
- ``GET /ops/attention[?library=east]`` -> JSON: the open attention items, newest first;
- ``POST /ops/requests/{library}/{hrid}/retry`` [``{"step": "borrow_received"}``] -> JSON: what was retried;
  from the page's form (``application/x-www-form-urlencoded``) it answers 303 back to the request's page.

Unknown hrid or library: 404; a refusal (nothing to retry, an unknown step): 400; ReShare or the table out of
reach: 503. No answer carries the text of an internal error.
"""

from urllib.parse import parse_qs, urlencode

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from illbridge import staff
from illbridge import staffpage as page
from illbridge.errors import BridgeError, ConfigurationError
from illbridge.models import StepName
from illbridge.observability import logger, metrics, tracer
from illbridge.wiring import current_services

app = APIGatewayRestResolver()


def _json(status: int, body: object) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def _html(status: int, body: str) -> Response:
    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=body,
        headers={
            "Cache-Control": "no-store",
            # no script at all; forms post only back to the bridge
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        },
    )


def _base() -> str:
    """The path the page lives under: ``/Prod/ops`` through API Gateway's own host, ``/ops`` otherwise."""
    event = app.current_event
    host = (event.headers or {}).get("Host") or (event.headers or {}).get("host") or ""
    stage = event.request_context.stage
    return f"/{stage}/ops" if "execute-api" in host and stage else "/ops"


def _error(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, staff.NotFound | ConfigurationError):
        return 404, str(exc)
    if isinstance(exc, BridgeError) and exc.transient:
        logger.warning("ops API: a system is out of reach", extra={"error": str(exc)})
        return 503, "ReShare or the bridge's table cannot be reached just now: try again"
    if isinstance(exc, BridgeError):
        return 400, str(exc)
    logger.exception("ops API failed")
    return 500, "the bridge failed; its log has the details"


@app.get("/ops")  # and /ops/: API Gateway and the resolver take both
def staff_page() -> Response:
    params = app.current_event.query_string_parameters or {}
    library = (params.get("library") or "").strip() or None
    hrid = (params.get("hrid") or "").strip() or None
    services = current_services()
    base = _base()
    try:
        libraries = [(c.library_id, c.name) for c in staff.library_configs(services)]
        items = [i.model_dump(mode="json") for i in staff.attention(services, library)]
        views = staff.request_views(services, hrid, library) if hrid else []
    except Exception as exc:
        status, message = _error(exc)
        if not hrid or status >= 500:
            return _html(status, page.error(base, message))
        return _html(status, page.render(base, libraries, library, hrid, [], [], notice=message))
    retried = params.get("retried")
    notice = f"Retry sent for {retried}: the step runs again within seconds." if retried else None
    return _html(200, page.render(base, libraries, library, hrid, items, views, notice=notice))


@app.get("/ops/requests/<library>/<hrid>")
def request_view(library: str, hrid: str) -> Response:
    try:
        return _json(200, staff.request_view(current_services(), hrid, library))
    except Exception as exc:
        status, message = _error(exc)
        return _json(status, {"error": message})


@app.get("/ops/attention")
def attention_list() -> Response:
    library = (app.current_event.query_string_parameters or {}).get("library") or None
    try:
        items = staff.attention(current_services(), library)
    except Exception as exc:
        status, message = _error(exc)
        return _json(status, {"error": message})
    return _json(200, {"items": [i.model_dump(mode="json") for i in items]})


@app.post("/ops/requests/<library>/<hrid>/retry")
def retry(library: str, hrid: str) -> Response:
    event = app.current_event
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    from_page = headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    try:
        if from_page:
            step_text = (parse_qs(event.decoded_body or "").get("step") or [""])[0] or None
        else:
            body = event.json_body if event.body else {}
            step_text = body.get("step") if isinstance(body, dict) else None
        step = StepName(step_text) if step_text else None
    except (ValueError, TypeError):
        return _json(400, {"error": f"no step {step_text!r}: one of {', '.join(s.value for s in StepName)}"})
    try:
        sent = staff.retry_request(current_services(), hrid, library, step)
    except Exception as exc:
        status, message = _error(exc)
        if from_page and status < 500:
            return _html(status, page.error(_base(), message))
        return _json(status, {"error": message})
    metrics.add_metric(name="OpsRetries", unit="Count", value=len(sent))
    retried = [{"step": s["step"], "released": s["released"]} for s in sent]
    if from_page:
        query = urlencode({"library": library, "hrid": hrid, "retried": ", ".join(s["step"] for s in sent)})
        return Response(status_code=303, headers={"Location": f"{_base()}/?{query}"}, body="")
    return _json(202, {"library": library, "hrid": hrid, "retried": retried})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
