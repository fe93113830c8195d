"""A projector tells a server's failure (retry it) from a record's (park the partition at it), finds
the first record of a batch that cannot be applied, and describes it for the dead-letter topic."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import elastic_transport
import orjson
import psycopg
import psycopg.errors
import psycopg_pool
import pydantic
import pytest
from aiokafka import ConsumerRecord
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError
from psycopg.types.string import StrDumper

from event_schemas.catalog import ProductCreated
from event_schemas.money import Money
from event_schemas.registry import REGISTRY, UnknownEvent
from event_schemas.users import UserRegistered
from projectors.catalog.search_index import ProductSearchProjection
from projectors.runtime.dead_letters import DeadLetter
from projectors.runtime.failures import describe, is_transient
from projectors.runtime.poison import apply_up_to_poison
from projectors.runtime.search_runner import IndexBusy, IndexWriteFailed, index_events


def api_error(status: int) -> ApiError:
    meta = ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=HttpHeaders(),
        duration=0.0,
        node=NodeConfig("http", "localhost", 9200),
    )
    return ApiError(f"status {status}", meta=meta, body={})


def validation_error() -> pydantic.ValidationError:
    try:
        ProductCreated.model_validate({"aggregate_id": "1"})
    except pydantic.ValidationError as error:
        return error
    raise AssertionError("an empty ProductCreated was valid")


def nul_refusal() -> psycopg.DataError:
    """What psycopg raises for a product named "nul\\0name" (before PostgreSQL sees it)."""
    try:
        StrDumper(str).dump("nul\x00name")
    except psycopg.DataError as error:
        return error
    raise AssertionError("psycopg accepted a NUL byte")


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg_pool.PoolTimeout("couldn't get a connection after 5.00 sec"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.SerializationFailure("could not serialize access"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        elastic_transport.ConnectionError("Connection refused"),
        elastic_transport.ConnectionTimeout("timed out"),
        api_error(429),
        api_error(503),
        IndexBusy("3 documents failed, first: es_rejected_execution_exception"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
    ],
    ids=lambda error: f"{type(error).__name__}{getattr(error, 'status_code', '')}",
)
def test_a_server_down_busy_or_slow_is_transient(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        nul_refusal(),
        psycopg.errors.UntranslatableCharacter("unsupported Unicode escape sequence"),
        psycopg.errors.CheckViolation("violates check constraint"),
        psycopg.errors.UniqueViolation("duplicate key value"),
        psycopg.errors.UndefinedColumn("column does not exist"),
        UnknownEvent("ProductTeleported v1"),
        validation_error(),
        orjson.JSONDecodeError("unexpected character", "{", 0),
        BadRequestError("mapper_parsing_exception", meta=api_error(400).meta, body={}),
        IndexWriteFailed("1 documents failed, first: mapper_parsing_exception"),
        KeyError("name"),
    ],
    ids=lambda error: f"{type(error).__name__}{getattr(error, 'status_code', '')}",
)
def test_a_record_the_code_or_the_server_refuses_is_permanent(error: Exception) -> None:
    assert not is_transient(error)


def test_a_refused_events_description_names_the_fields_but_quotes_no_values() -> None:
    try:
        UserRegistered.model_validate({"aggregate_id": "1", "password_hash": "$argon2id$secret"})
    except pydantic.ValidationError as error:
        described = describe(error)
    assert "UserRegistered" in described and "aggregate_version: Field required" in described
    assert "argon2id" not in described


class Ledger:
    """A read model that commits a batch only if it holds no poison (a transaction: all or nothing)."""

    def __init__(self, poison: set[int]) -> None:
        self.poison = poison
        self.committed: list[int] = []
        self.attempts = 0

    async def apply(self, records: Sequence[int]) -> None:
        self.attempts += 1
        bad = self.poison.intersection(records)
        if bad:
            raise ValueError(f"cannot apply {min(bad)}")
        self.committed += records


def test_the_records_before_the_first_poison_are_applied_and_nothing_after_it() -> None:
    ledger = Ledger(poison={37, 60})
    found = asyncio.run(apply_up_to_poison(ledger.apply, list(range(100))))
    assert found is not None
    assert found.record == 37
    assert str(found.error) == "cannot apply 37"
    assert ledger.committed == list(range(37))


def test_a_batch_without_poison_is_applied_whole() -> None:
    ledger = Ledger(poison=set())
    assert asyncio.run(apply_up_to_poison(ledger.apply, list(range(10)))) is None
    assert ledger.committed == list(range(10))


def test_a_poisoned_first_record_applies_nothing() -> None:
    ledger = Ledger(poison={0})
    found = asyncio.run(apply_up_to_poison(ledger.apply, list(range(10))))
    assert found is not None and found.record == 0
    assert ledger.committed == []


def test_finding_the_poison_in_a_full_batch_takes_a_few_dozen_attempts_not_thousands() -> None:
    ledger = Ledger(poison={4321})
    found = asyncio.run(apply_up_to_poison(ledger.apply, list(range(5000))))
    assert found is not None and found.record == 4321
    assert ledger.committed == list(range(4321))
    assert ledger.attempts <= 100


def test_a_dead_letter_names_the_record_and_its_reason_in_a_form_postgresql_can_store() -> None:
    record = ConsumerRecord(
        topic="t1.catalog.events",
        partition=3,
        offset=42,
        timestamp=0,
        timestamp_type=0,
        key=b"1001",
        value=b"{}",
        checksum=None,
        serialized_key_size=4,
        serialized_value_size=2,
        headers=[("event_type", b"ProductCreated"), ("schema_version", b"1")],
    )
    letter = DeadLetter.of("catalog", record, ValueError("bad name 'nul\x00name'"))
    assert (letter.topic, letter.partition, letter.offset, letter.event_type) == (
        "t1.catalog.events",
        3,
        42,
        "ProductCreated",
    )
    assert letter.error_class == "ValueError"
    assert letter.reason == "bad name 'nul\\x00name'"
    assert dict(letter.headers()) == {
        "dead_letter.projection": b"catalog",
        "dead_letter.topic": b"t1.catalog.events",
        "dead_letter.partition": b"3",
        "dead_letter.offset": b"42",
        "dead_letter.error": b"ValueError",
        "dead_letter.reason": b"bad name 'nul\\x00name'",
    }


class BulkRefusing:
    """Elasticsearch answering every document of a bulk request with `status`."""

    def __init__(self, status: int, error_type: str) -> None:
        self.status, self.error_type = status, error_type

    async def mget(self, **_: Any) -> dict[str, Any]:
        return {"docs": []}

    async def bulk(self, operations: list[dict[str, Any]]) -> dict[str, Any]:
        item = {"index": {"status": self.status, "error": {"type": self.error_type}}}
        return {"errors": True, "items": [item for _ in operations[::2]]}


def index_one_product(es: BulkRefusing) -> None:
    event = ProductCreated(
        aggregate_id="1001",
        aggregate_version=1,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        product_id=1001,
        name="Mug",
        description="A mug",
        price=Money(amount=Decimal("9.99")),
        stock=1,
    )
    projection = ProductSearchProjection("t1")
    asyncio.run(index_events(cast(AsyncElasticsearch, es), projection, projection.alias, [event]))


def test_documents_elasticsearch_refuses_for_now_are_retried() -> None:
    with pytest.raises(IndexBusy) as refused:
        index_one_product(BulkRefusing(429, "es_rejected_execution_exception"))
    assert is_transient(refused.value)


def test_a_document_elasticsearch_refuses_as_malformed_parks_its_partition() -> None:
    with pytest.raises(IndexWriteFailed) as refused:
        index_one_product(BulkRefusing(400, "mapper_parsing_exception"))
    assert not is_transient(refused.value)


def test_an_event_the_registry_does_not_know_is_permanent() -> None:
    value = orjson.dumps(
        {
            "event_id": "00000000-0000-0000-0000-000000000001",
            "event_type": "ProductTeleported",
            "schema_version": 1,
            "aggregate_id": "1001",
            "aggregate_version": 2,
            "occurred_at": "2026-01-01T00:00:00Z",
            "payload": {},
        }
    )
    with pytest.raises(UnknownEvent) as unknown:
        REGISTRY.from_bytes(value)
    assert not is_transient(unknown.value)
