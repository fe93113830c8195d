"""Text that may come in from a request: no control characters (PostgreSQL refuses NUL, and no name,
reason or search needs the others), except line breaks and tabs where text may span lines."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _single_line(text: str) -> str:
    if _CONTROL.search(text):
        raise ValueError("must not contain control characters (U+0000 to U+001F, U+007F)")
    return text


def _lines(text: str) -> str:
    if _CONTROL_BUT_LINES.search(text):
        raise ValueError("must not contain control characters other than line breaks and tabs")
    return text


# Add to a str field's Annotated constraints: `Annotated[str, StringConstraints(...), SingleLine]`.
SingleLine = AfterValidator(_single_line)
Lines = AfterValidator(_lines)

SingleLineText = Annotated[str, SingleLine]
