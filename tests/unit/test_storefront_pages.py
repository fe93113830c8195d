"""The pages name every JavaScript module they load as a `modulepreload`: the browser then fetches the
whole module graph at once instead of one level of imports after another (the first page showed its
products about 15% sooner in `python -m bench --only storefront`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from event_schemas.money import ZERO_DECIMAL_CURRENCIES
from infra.edge import STOREFRONT


def module_graph(entry: Path) -> set[Path]:
    """Every module `entry` imports, directly or not (relative imports: the pages load nothing else)."""
    seen: set[Path] = set()
    todo = [entry.resolve()]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [
            (module.parent / name).resolve() for name in re.findall(r'from "(\.[^"]+)"', module.read_text())
        ]
    return seen - {entry.resolve()}


@pytest.mark.parametrize(
    ("page", "entry"), [("index.html", "js/shop/main.js"), ("admin/index.html", "js/admin/main.js")]
)
def test_a_page_preloads_exactly_the_modules_its_script_imports(page: str, entry: str) -> None:
    html = STOREFRONT / page
    preloaded = {
        (html.parent / href).resolve()
        for href in re.findall(r'<link rel="modulepreload" href="([^"]+)">', html.read_text())
    }
    assert preloaded == module_graph(STOREFRONT / entry)


def test_the_pages_know_the_same_zero_decimal_currencies_as_the_api() -> None:
    money = (STOREFRONT / "js" / "money.js").read_text()
    listed = re.search(r"const ZERO_DECIMAL_CURRENCIES = new Set\(\[(.*?)\]\)", money, re.DOTALL)
    assert listed is not None
    assert set(re.findall(r'"([A-Z]{3})"', listed.group(1))) == ZERO_DECIMAL_CURRENCIES


def test_every_amount_in_minor_units_is_read_with_its_currency() -> None:
    """1999 minor units are 19.99 USD but 1999 JPY: the pages never assume two decimals."""
    sources = [module.read_text() for module in (STOREFRONT / "js").rglob("*.js")]
    calls = [call for source in sources for call in re.findall(r"fromMinorUnits\(([^()]*)\)", source)]
    assert len(calls) == sum(source.count("fromMinorUnits(") for source in sources) > 1
    assert all(len(arguments.split(",")) == 2 for arguments in calls), calls
