"""JSON bodies read without floats: a number with a fraction or an exponent (or NaN, Infinity) becomes a
`NumberText`, an exact Decimal that keeps the text it was written as, so a price can be held to the
shape of its text (`19.99` yes, `1e2` no) and never passes through a float. Integers stay ints."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class NumberText(Decimal):
    """A JSON number as written (`19.99`, `1e2`), with its exact value."""

    text: str

    def __new__(cls, text: str) -> NumberText:
        try:
            number = super().__new__(cls, text)
        except InvalidOperation:  # an exponent beyond Decimal's range: not a number anything accepts
            number = super().__new__(cls, "NaN")
        number.text = text
        return number


def loads(body: bytes | str) -> Any:
    return json.loads(body, parse_float=NumberText, parse_constant=NumberText)


_UNREAD = object()


class _NumbersKeptRequest(Request):
    """The route's request, reading its JSON with `loads`. The body is read through the request the
    app was handed, so an exception handler (forwarding to a partition's owner) can still read it."""

    def __init__(self, outer: Request) -> None:
        super().__init__(outer.scope, outer.receive)
        self._outer = outer
        self._parsed: Any = _UNREAD

    async def body(self) -> bytes:
        return await self._outer.body()

    async def json(self) -> Any:
        if self._parsed is _UNREAD:
            self._parsed = loads(await self.body())
        return self._parsed


class NumbersKeptRoute(APIRoute):
    """A route whose JSON body has no floats in it (`APIRouter(route_class=NumbersKeptRoute)`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def numbers_kept(request: Request) -> Response:
            return await handler(_NumbersKeptRequest(request))

        return numbers_kept
