"""``Sandbox(time_scale=f)`` runs the template with every timing scaled by one factor (sandbox/timescale.py):
queue visibility timeouts, function timeouts, the step lease and the clients' timeouts and pauses, as the
functions see them; try counts stay as they are."""

from __future__ import annotations

from sandbox.runtime import Sandbox


def test_the_sandbox_runs_every_timing_of_the_template_at_one_scale() -> None:
    with Sandbox(background=False, visibility=None, time_scale=0.25) as sb:
        sqs = sb.boto3_client("sqs")
        attributes = sqs.get_queue_attributes(
            QueueUrl=sb.queue_url("LendShippedQueue"), AttributeNames=["VisibilityTimeout"]
        )["Attributes"]
        assert attributes["VisibilityTimeout"] == "90"  # 360 s x 0.25
        step, poller = sb.function("LendShippedFunction"), sb.function("ReSharePollerFunction")
        assert (step.timeout, poller.timeout) == (15, 30)  # 60 s and 120 s x 0.25
        env = sb.function_env("LendShippedFunction")
        assert float(env["STEP_LEASE_SECONDS"]) == 30
        assert float(env["RESHARE_READ_TIMEOUT"]) == 5 and float(env["RESHARE_BACKOFF_SECONDS"]) == 0.125
        assert float(env["AWS_READ_TIMEOUT"]) == 1.25 and env["AWS_TRIES"] == "2"
        assert float(sb.function_env("WebhookFunction")["RESHARE_READ_TIMEOUT"]) == 1  # its own 4 s x 0.25
        assert "x 0.25" in sb.banner()
