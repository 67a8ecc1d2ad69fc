"""Signed webhooks: POST /webhooks/reshare (ReShare request events), POST /webhooks/wms (WMS check-ins)."""

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from illbridge.errors import BadInput, BridgeError
from illbridge.observability import logger, metrics, tracer
from illbridge.workflow import webhooks
from illbridge.workflow.services import current_services

app = APIGatewayRestResolver()


def _answer(status: int, body: dict) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def _request() -> tuple[dict, str]:
    event = app.current_event
    return dict(event.headers or {}), event.decoded_body or ""


@app.post("/webhooks/reshare")
def reshare_event() -> Response:
    answer = webhooks.handle_reshare_event(current_services(), *_request())
    return _answer(answer.status, answer.body)


@app.post("/webhooks/wms")
def wms_check_in() -> Response:
    answer = webhooks.handle_wms_check_in(current_services(), *_request())
    return _answer(answer.status, answer.body)


@app.exception_handler(webhooks.Unauthorized)
def unauthorized(exc: webhooks.Unauthorized) -> Response:
    logger.warning("webhook refused", extra={"reason": exc.message})
    return _answer(401, {"error": "unauthorized", "message": exc.message})


@app.exception_handler(webhooks.TooLarge)
def too_large(exc: webhooks.TooLarge) -> Response:
    return _answer(413, {"error": "payload_too_large", "message": exc.message})


@app.exception_handler(BadInput)
def bad_input(exc: BadInput) -> Response:
    return _answer(400, {"error": "bad_request", "message": exc.message})


@app.exception_handler(BridgeError)
def unavailable(exc: BridgeError) -> Response:
    # ReShare or the bus could not be reached: the sender retries the delivery (same webhook-id).
    logger.error("webhook could not be processed", extra={"error": exc.message})
    status = 503 if exc.transient else 500
    return _answer(
        status, {"error": "unavailable" if exc.transient else "misconfigured", "message": exc.message}
    )


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
