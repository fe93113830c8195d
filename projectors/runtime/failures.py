"""Why a projector's write failed: a server that is down, busy or slow (transient: retry the same
records with backoff) or the records themselves (permanent: no retry will change the answer, so the
partition is parked at the first record that fails, see consume_loop.py)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
import pydantic

log = logging.getLogger(__name__)

T = TypeVar("T")


class ServerBusy(Exception):
    """A server refused a write for reasons of its own (overloaded, restarting), not the record's; a
    writer raises it where the driver reports such a refusal as data (a bulk response's items)."""


def is_transient_status(status: int) -> bool:
    """HTTP statuses that say "not now" rather than "not this": too many requests, server errors."""
    return status == 429 or status >= 500


def is_transient(error: BaseException) -> bool:
    """True for failures of the servers or of the way to them; every other failure (a value PostgreSQL
    refuses, an event the registry cannot decode, a document Elasticsearch refuses, a bug) is the
    record's, and retrying it would stop its partition forever."""
    if isinstance(error, psycopg.OperationalError | ServerBusy | OSError | TimeoutError):
        # OperationalError: connection lost or refused, server shutting down, pool timeout,
        # serialization failure, deadlock, lock timeout, out of resources.
        return True
    # Elasticsearch's errors come only from a process that imported its client; the others do not
    # import it for this (it is 35 MiB of every process that does).
    transport = sys.modules.get("elastic_transport")
    if transport is not None and isinstance(error, transport.ConnectionError | transport.ConnectionTimeout):
        return True
    client = sys.modules.get("elasticsearch")
    if client is not None and isinstance(error, client.ApiError):
        return is_transient_status(error.status_code)
    return False


def quotes_values(error: Exception) -> bool:
    """Whether the error's text quotes the values it refused: PostgreSQL's DETAIL ("Failing row
    contains ...") and pydantic's `input_value` could quote a password hash into a log line."""
    return isinstance(error, psycopg.Error | pydantic.ValidationError)


def describe(error: Exception) -> str:
    """The failure in words fit for a log line, a table and a header: what was refused and why,
    without the values themselves."""
    if isinstance(error, psycopg.Error) and error.diag.message_primary:
        return error.diag.message_primary
    if isinstance(error, pydantic.ValidationError):
        problems = error.errors(include_url=False, include_input=False, include_context=False)
        return f"{error.title}: " + "; ".join(
            f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}" for problem in problems
        )
    return str(error) or repr(error)


def always(error: Exception) -> bool:
    return True


async def until_done(
    attempt: Callable[[], Awaitable[T]],
    what: str,
    retry_if: Callable[[Exception], bool] = always,
) -> T:
    """Retry (a server down, say) with backoff until it lands; a failure that `retry_if` refuses is
    raised at once."""
    delay = 0.5
    while True:
        try:
            return await attempt()
        except Exception as error:
            if not retry_if(error):
                raise
            log.warning("%s failed (%r); retrying in %.1fs", what, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
