"""Text from requests carries no control characters: PostgreSQL refuses a NUL, and one bad event must
never reach a projector (issue 10, finding 1)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from command_api.catalog.commands import AdjustStock, CreateProduct
from query_api.catalog.schemas import ProductFilters


def product(**fields: object) -> dict[str, object]:
    return {"name": "Mug", "description": "A mug", "price": "1.00", "stock": 1} | fields


@pytest.mark.parametrize("name", ["nul\u0000name", "bell\u0007", "tab\tname", "line\nbreak", "del\u007f"])
def test_a_product_name_with_a_control_character_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        CreateProduct.model_validate(product(name=name))


def test_a_description_may_span_lines_but_holds_no_other_control_character() -> None:
    assert CreateProduct.model_validate(product(description="line one\nline two\ttabbed")).description
    with pytest.raises(ValidationError, match="control characters"):
        CreateProduct.model_validate(product(description="nul\u0000"))


def test_reasons_and_searches_are_single_lines() -> None:
    with pytest.raises(ValidationError, match="control characters"):
        AdjustStock.model_validate({"delta": 1, "reason": "x\u0000"})
    with pytest.raises(ValidationError, match="control characters"):
        ProductFilters.model_validate({"search": "mug\u0000"})
    assert ProductFilters.model_validate({"search": "tea pot"}).search == "tea pot"
