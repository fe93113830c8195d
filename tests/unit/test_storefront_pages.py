"""The pages name every JavaScript module they load as a `modulepreload`: the browser then fetches the
whole module graph at once instead of one level of imports after another (the first page showed its
products about 15% sooner in `python -m bench --only storefront`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
