"""The catalog read models as pure folds: rows for PostgreSQL, documents for Elasticsearch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from event_schemas.catalog import (
    ProductCreated,
    ProductDeleted,
    ProductUpdated,
    StockAdjusted,
    StockReleased,
    StockReservationCommitted,
    StockReservationRejected,
    StockReserved,
)
from event_schemas.money import Money
from projectors.catalog import projection
from projectors.catalog.search_index import ProductSearchProjection, to_document, to_row
from query_api.catalog.schemas import ProductFilters, ProductPublic, ProductSort
from query_api.catalog.search import search_body

NOW = datetime(2026, 1, 1, tzinfo=UTC)
COMMON = {"aggregate_id": "product-1001", "product_id": 1001}


def created(version: int = 1) -> ProductCreated:
    return ProductCreated(
        **COMMON,
        aggregate_version=version,
        occurred_at=NOW,
        name="Mug",
        description="A mug",
        price=Money(amount=Decimal("19.99")),
        stock=5,
    )


def test_a_batch_folds_into_one_row_per_product() -> None:
    later = NOW + timedelta(minutes=1)
    events = [
        created(),
        ProductUpdated(**COMMON, aggregate_version=2, occurred_at=later, price=Money(amount=Decimal("9.50"))),
        StockReserved(**COMMON, aggregate_version=3, occurred_at=later, order_id="o", quantity=2, stock=3),
    ]
    [row] = projection.fold({}, events).values()
    assert (row["price"], row["stock"], row["version"], row["name"]) == (Decimal("9.50"), 3, 3, "Mug")
    assert row["created_at"] == NOW and row["updated_at"] == later
    assert projection.needs_current(events) == set()


def test_events_already_applied_change_nothing() -> None:
    current = projection.fold({}, [created()])
    assert projection.fold(current, [created()]) == {}


def test_a_change_to_a_product_outside_the_batch_reads_its_row_first() -> None:
    deleted = ProductDeleted(**COMMON, aggregate_version=2, occurred_at=NOW)
    assert projection.needs_current([deleted]) == {1001}
    current = projection.fold({}, [created()])
    [row] = projection.fold(current, [deleted]).values()
    assert row["deleted_at"] == NOW


def test_a_rejected_reservation_moves_the_version_but_not_the_row() -> None:
    current = projection.fold({}, [created()])
    rejected = StockReservationRejected(
        **COMMON,
        aggregate_version=2,
        occurred_at=NOW + timedelta(hours=1),
        order_id="o",
        quantity=9,
        available=5,
        reason="insufficient_stock",
    )
    [row] = projection.fold(current, [rejected]).values()
    assert row["version"] == 2 and row["updated_at"] == NOW and row["stock"] == 5


def test_reserved_units_are_counted_apart_from_the_stock_free_to_sell() -> None:
    events = [
        created(),
        StockReserved(**COMMON, aggregate_version=2, occurred_at=NOW, order_id="o-1", quantity=3, stock=2),
        StockReserved(**COMMON, aggregate_version=3, occurred_at=NOW, order_id="o-2", quantity=1, stock=1),
        StockReleased(**COMMON, aggregate_version=4, occurred_at=NOW, order_id="o-2", quantity=1, stock=2),
        StockAdjusted(**COMMON, aggregate_version=5, occurred_at=NOW, delta=4, stock=6, reason="delivery"),
    ]
    [row] = projection.fold({}, events).values()
    assert (row["stock"], row["reserved"]) == (6, 3)
    committed = StockReservationCommitted(
        **COMMON, aggregate_version=6, occurred_at=NOW, order_id="o-1", quantity=3, stock=6
    )
    [row] = projection.fold({1001: row}, [committed]).values()
    assert (row["stock"], row["reserved"]) == (6, 0)  # the held units left the shop; none freed


def test_existing_products_tables_gain_the_reserved_column() -> None:
    [create, alter] = projection.ProductsProjection("test").schema("products__rebuild")
    assert "reserved    integer NOT NULL DEFAULT 0 CHECK (reserved >= 0)" in create.as_string()
    assert alter.as_string().startswith('ALTER TABLE "products__rebuild" ADD COLUMN IF NOT EXISTS reserved')


def test_a_product_answers_its_units_on_hand_next_to_those_free_to_sell() -> None:
    reserved = StockReserved(
        **COMMON, aggregate_version=2, occurred_at=NOW, order_id="o", quantity=2, stock=3
    )
    [row] = projection.fold({}, [created(), reserved]).values()
    answer = ProductPublic.from_row(row).model_dump(mode="json")
    assert (answer["stock"], answer["reserved"], answer["onHand"], answer["price"]) == (3, 2, 5, "19.99")


def test_search_documents_carry_prices_as_strings_and_minor_units() -> None:
    [row] = projection.fold({}, [created()]).values()
    document = to_document(row)
    assert (document["price"], document["price_minor"], document["deleted"]) == ("19.99", 1999, False)
    assert to_row(document) == row


def test_documents_indexed_before_reservations_were_counted_have_none() -> None:
    [row] = projection.fold({}, [created()]).values()
    document = to_document(row)
    del document["reserved"]
    assert to_row(document)["reserved"] == 0


def test_the_search_projection_folds_documents_by_string_id() -> None:
    search = ProductSearchProjection("test")
    documents = search.fold({}, [created()])
    assert list(documents) == ["1001"]
    assert search.fold(documents, [created()]) == {}
    assert search.alias == "test.catalog-products"


def test_the_search_query_is_fuzzy_filtered_and_paged() -> None:
    body = search_body(
        ProductFilters(search="wirless", min_price=Decimal("10"), in_stock=True, limit=5, offset=10)
    )
    match = body["query"]["bool"]["must"]["multi_match"]
    assert (match["query"], match["fuzziness"]) == ("wirless", "AUTO")
    assert {"range": {"price_minor": {"gte": 1000}}} in body["query"]["bool"]["filter"]
    assert {"term": {"deleted": False}} in body["query"]["bool"]["filter"]
    assert (body["from"], body["size"], body["track_total_hits"]) == (10, 5, True)
    assert search_body(ProductFilters(search="x", sort=ProductSort.price_asc))["sort"][0] == {
        "price_minor": "asc"
    }
