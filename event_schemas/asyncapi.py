"""The event catalogue: an AsyncAPI 3.0 document of every topic, event type and schema version,
generated from the event classes themselves, so it cannot drift from the code (a test compares the
checked-in docs/asyncapi.json with what this module generates).

    python -m event_schemas.asyncapi            print it
    python -m event_schemas.asyncapi --write    regenerate docs/asyncapi.json
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from event_schemas import catalog, orders, payments, topics, users
from event_schemas.envelope import ENVELOPE_FIELDS, Event
from event_schemas.registry import EVENT_TYPE_HEADER, REGISTRY, SCHEMA_VERSION_HEADER

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"

# Each context's events live in its own topic, keyed by aggregate id.
TOPIC_OF_MODULE = {
    users.__name__: topics.USERS,
    catalog.__name__: topics.CATALOG,
    orders.__name__: topics.ORDERS,
    payments.__name__: topics.PAYMENTS,
}


def message_name(event: type[Event]) -> str:
    return f"{event.event_type}.v{event.schema_version}"


def message(event: type[Event], shared: dict[str, Any]) -> dict[str, Any]:
    """One event type at one version: the record's headers, and its value (envelope plus payload).
    The schemas its fields share with other events (Money, lines...) go into `shared`."""
    schema = event.model_json_schema(mode="serialization", ref_template="#/components/schemas/{model}")
    shared.update(schema.get("$defs", {}))
    properties = schema.get("properties", {})
    envelope = {name: properties[name] for name in sorted(ENVELOPE_FIELDS) if name in properties}
    payload = {name: value for name, value in properties.items() if name not in ENVELOPE_FIELDS}
    required = [name for name in schema.get("required", []) if name not in ENVELOPE_FIELDS]
    value: dict[str, Any] = {
        "type": "object",
        "properties": {
            **envelope,
            "event_type": {"const": event.event_type},
            "schema_version": {"const": event.schema_version},
            "aggregate_type": {"const": event.aggregate_type},
            "payload": {"type": "object", "properties": payload, "required": required},
        },
        "required": sorted(
            ["event_type", "schema_version", "aggregate_type", "payload", "event_id", "aggregate_id"]
        ),
    }
    return {
        "name": event.event_type,
        "title": f"{event.event_type} (schema version {event.schema_version})",
        "summary": (event.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ") or event.event_type,
        "headers": {
            "type": "object",
            "properties": {
                EVENT_TYPE_HEADER: {"const": event.event_type},
                SCHEMA_VERSION_HEADER: {"const": str(event.schema_version)},
            },
        },
        "payload": value,
    }


def document() -> dict[str, Any]:
    events = sorted(
        REGISTRY.classes(), key=lambda event: (event.__module__, event.event_type, event.schema_version)
    )
    shared: dict[str, Any] = {}
    messages = {message_name(event): message(event, shared) for event in events}
    channels: dict[str, Any] = {}
    for topic in topics.ALL:
        in_topic = [event for event in events if TOPIC_OF_MODULE[event.__module__] == topic]
        channels[topic] = {
            "address": f"{{namespace}}.{topic}",
            "parameters": {"namespace": {"description": "the deployment's COMMERCE_NAMESPACE"}},
            "description": f"The {topic.split('.')[0]} context's events, keyed by aggregate id, kept forever.",
            "messages": {
                message_name(e): {"$ref": f"#/components/messages/{message_name(e)}"} for e in in_topic
            },
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "commerce events",
            "version": "1",
            "description": "Every event the platform appends to Kafka, generated from event_schemas/. "
            "A record's value is one JSON object (the envelope and a payload); its type and schema "
            "version are also headers. Old versions are upcast on read.",
        },
        "channels": channels,
        "components": {"messages": messages, "schemas": shared},
    }


def rendered() -> bytes:
    return orjson.dumps(document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        DOCUMENT.write_bytes(rendered())
        print(f"wrote {DOCUMENT}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(rendered())
