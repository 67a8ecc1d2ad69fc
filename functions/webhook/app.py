"""Signed webhooks: POST /webhooks/reshare (ReShare request events), POST /webhooks/wms (WMS check-ins).

Every answer is JSON; the answers are documented in docs/operations.md ("Webhook answers"). A 5xx never
carries the text of an internal error (DynamoDB's, ReShare's): that goes to the log only.
"""

import base64
import binascii

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from illbridge.errors import BadInput, BridgeError, HostLmsIntegrationOn, TooLarge, Unauthorized
from illbridge.intake import webhooks
from illbridge.observability import logger, metrics, tracer
from illbridge.wiring import current_ports

app = APIGatewayRestResolver()


# what became of a delivery -> its HTTP status (docs/operations.md, "Webhook answers"): a replay is answered
# 200 and changes nothing; a delivery taken (or taken and ignored) 202
STATUS_OF = {"accepted": 202, "ignored": 202, "duplicate": 200}


def _answer(status: int, body: dict) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def _taken(answer: webhooks.WebhookAnswer) -> Response:
    return _answer(STATUS_OF[answer.outcome], answer.body)


def _request() -> tuple[dict, bytes]:
    """The headers and the body as the bytes that were signed (a base64 body is decoded, never as text)."""
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadInput("body is not valid base64") from exc
    else:
        raw = body.encode("utf-8", "surrogatepass")
    return dict(event.headers or {}), raw


@app.post("/webhooks/reshare")
def reshare_event() -> Response:
    return _taken(webhooks.handle_reshare_event(current_ports(), *_request()))


@app.post("/webhooks/wms")
def wms_check_in() -> Response:
    return _taken(webhooks.handle_wms_check_in(current_ports(), *_request()))


@app.exception_handler(Unauthorized)
def unauthorized(exc: Unauthorized) -> Response:
    logger.warning("webhook refused", extra={"reason": exc.message})
    return _answer(401, {"error": "unauthorized", "message": exc.message})


@app.exception_handler(TooLarge)
def too_large(exc: TooLarge) -> Response:
    return _answer(413, {"error": "payload_too_large", "message": exc.message})


@app.exception_handler(BadInput)
def bad_input(exc: BadInput) -> Response:
    return _answer(400, {"error": "bad_request", "message": exc.message})


@app.exception_handler(HostLmsIntegrationOn)
def integration_on(exc: HostLmsIntegrationOn) -> Response:
    # the library's own setting, and how to fix it: safe and useful to say
    logger.error("webhook refused: ReShare acts in WMS itself", extra={"error": exc.message})
    return _answer(503, {"error": "unavailable", "message": exc.message})


@app.exception_handler(BridgeError)
def unavailable(exc: BridgeError) -> Response:
    # ReShare or DynamoDB could not be reached: the sender retries the delivery (same webhook-id). The
    # details are logged, never answered: they name internals (tables, hosts, DynamoDB's own messages).
    logger.error("webhook could not be processed", extra={"error": exc.message, "kind": type(exc).__name__})
    metrics.add_metric(name="WebhookFailures", unit="Count", value=1)
    if exc.transient:
        return _answer(503, {"error": "unavailable", "message": "try again later (same webhook-id)"})
    return _answer(
        500, {"error": "misconfigured", "message": "the bridge cannot take this delivery; see its logs"}
    )


@app.exception_handler(Exception)
def internal(exc: Exception) -> Response:
    logger.exception("webhook failed unexpectedly")
    metrics.add_metric(name="WebhookFailures", unit="Count", value=1)
    return _answer(500, {"error": "internal", "message": "the bridge failed; see its logs"})


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
