"""Powertools' idempotency layer runs on the store's own DynamoDB client (one client per function), through
``TypedCalls``: the calls a plain client takes, typed values in and out, on the resource's client."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemAlreadyExistsError
from aws_lambda_powertools.utilities.idempotency.persistence.base import DataRecord
from botocore.exceptions import ClientError

from illbridge.store import BridgeStore
from tests.unit.store.conftest import BRIDGE_TABLE, TABLE_NAMES


def test_typed_values_go_in_and_come_back_typed(store: BridgeStore) -> None:
    client = store.typed_client()
    key = {"pk": {"S": "IDEM#1"}, "sk": {"S": "X"}}
    client.put_item(TableName=BRIDGE_TABLE, Item={**key, "n": {"N": "3"}, "data": {"S": '{"a": 1}'}})
    item = client.get_item(TableName=BRIDGE_TABLE, Key=key, ConsistentRead=True)["Item"]
    assert item == {**key, "n": {"N": "3"}, "data": {"S": '{"a": 1}'}}
    # a refused condition answers with the item as stored, typed (as a plain client's error does)
    with pytest.raises(ClientError) as refused:
        client.put_item(
            TableName=BRIDGE_TABLE,
            Item=key,
            ConditionExpression="attribute_not_exists(pk) OR #n < :n",
            ExpressionAttributeNames={"#n": "n"},
            ExpressionAttributeValues={":n": {"N": "2"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    answer: Any = refused.value.response
    assert answer["Error"]["Code"] == "ConditionalCheckFailedException"
    assert answer["Item"]["n"] == {"N": "3"}
    client.update_item(
        TableName=BRIDGE_TABLE,
        Key=key,
        UpdateExpression="SET #n = :n",
        ExpressionAttributeNames={"#n": "n"},
        ExpressionAttributeValues={":n": {"N": "4"}},
    )
    assert client.get_item(TableName=BRIDGE_TABLE, Key=key)["Item"]["n"] == {"N": "4"}
    client.delete_item(TableName=BRIDGE_TABLE, Key=key)
    assert "Item" not in client.get_item(TableName=BRIDGE_TABLE, Key=key)


def test_powertools_keeps_its_records_through_the_stores_client(store: BridgeStore) -> None:
    # Given Powertools' persistence layer on the store's client and the template's idempotency table
    client: Any = store.typed_client()
    layer = DynamoDBPersistenceLayer(table_name=TABLE_NAMES["IdempotencyTable"], boto3_client=client)
    layer.configure(config=IdempotencyConfig(), function_name="step")
    record = DataRecord(idempotency_key="step#abc", status="INPROGRESS", expiry_timestamp=4102444800)
    # When it records a first delivery, Then a second of the same key is refused
    layer._put_record(record)
    with pytest.raises(IdempotencyItemAlreadyExistsError):
        layer._put_record(record)
    # And what it reads back is what it wrote; it can complete and delete it
    assert layer._get_record("step#abc").status == "INPROGRESS"
    layer._update_record(
        DataRecord(
            idempotency_key="step#abc", status="COMPLETED", expiry_timestamp=4102444800, response_data="{}"
        )
    )
    assert layer._get_record("step#abc").status == "COMPLETED"
    layer._delete_record(record)
