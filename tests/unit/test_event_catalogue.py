"""The checked-in event catalogue (docs/asyncapi.json) is what the event classes generate: a new event,
field or schema version without `python -m event_schemas.asyncapi --write` fails here."""

from __future__ import annotations

import orjson

from event_schemas import asyncapi
from event_schemas.registry import REGISTRY


def test_the_checked_in_asyncapi_document_matches_the_event_classes() -> None:
    assert asyncapi.DOCUMENT.read_bytes() == asyncapi.rendered(), (
        "docs/asyncapi.json is stale: run `python -m event_schemas.asyncapi --write`"
    )


def test_every_registered_event_is_a_message_of_its_contexts_topic() -> None:
    document = orjson.loads(asyncapi.rendered())
    listed = {name for channel in document["channels"].values() for name in channel["messages"]}
    assert listed == {asyncapi.message_name(event) for event in REGISTRY.classes()}
    assert set(document["channels"]["catalog.events"]["messages"]) >= {
        "ProductCreated.v1",
        "StockReserved.v1",
    }
    refs = orjson.dumps(document).decode().split('"$ref":"')[1:]
    for ref in refs:
        section, name = ref.split('"', 1)[0].removeprefix("#/components/").split("/")
        assert name in document["components"][section], f"dangling reference {ref.split(chr(34))[0]}"
