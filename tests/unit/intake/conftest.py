"""The intake's tests use the store's fixtures: a real ``BridgeStore`` on an in-process moto DynamoDB."""

from tests.unit.store.conftest import aws_env, clock, dynamodb, store

__all__ = ["aws_env", "clock", "dynamodb", "store"]
