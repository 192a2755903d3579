"""README's error table and api/errors.py name the same errors: one row per ErrorSpec, no more, no fewer."""

from __future__ import annotations

import re
from pathlib import Path

from conntel.api import errors

README = Path(__file__).resolve().parents[1] / "README.md"

Row = tuple[int, int, frozenset[int], tuple[int, ...]]  # status, code, possible chain codes, codes always after


def documented() -> list[Row]:
    """The rows of README's "### Error codes" table, read as `status | CODE [+ chain A / B] [+ N] | when`."""
    section = README.read_text().split("### Error codes", 1)[1].split("\n## ", 1)[0]
    rows: list[Row] = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or cells[0] in ("status", "---"):
            continue
        assert re.fullmatch(r"\d{3}", cells[0]), f"one status per row: {line}"
        main, *extras = (part.strip() for part in cells[1].split("+"))
        chain: frozenset[int] = frozenset()
        also: tuple[int, ...] = ()
        for extra in extras:
            if extra.startswith("chain "):
                chain = frozenset(int(code) for code in extra.removeprefix("chain ").split(" / "))
            else:
                also += (int(extra),)
        rows.append((int(cells[0]), int(main), chain, also))
    return rows


def registered() -> list[Row]:
    return [(spec.status, spec.code, spec.chain, tuple(item.code for item in spec.also)) for spec in errors.SPECS]


def test_the_table_is_read() -> None:
    rows = documented()
    assert len(rows) >= 25
    assert (400, 7003, frozenset(), (7000,)) in rows
    assert (400, 6003, frozenset({6102, 6103}), ()) in rows


def test_every_error_is_documented_and_nothing_else() -> None:
    rows, specs = documented(), registered()
    assert len(set(rows)) == len(rows), "a README row is there twice"
    assert len(set(specs)) == len(specs), "two ErrorSpecs are the same error"
    assert sorted(set(specs) - set(rows)) == [], "errors.py errors missing from README's table"
    assert sorted(set(rows) - set(specs)) == [], "README's table documents errors that errors.py lacks"


def test_each_own_code_has_one_status() -> None:
    """conntel's own codes (20000 and up) each have one status: a code never changes meaning."""
    own: dict[int, int] = {}
    for spec in errors.SPECS:
        if spec.code >= 20000:
            assert own.setdefault(spec.code, spec.status) == spec.status, f"code {spec.code} has two statuses"


def test_no_call_site_pairs_a_status_with_a_code() -> None:
    """Outside errors.py, errors are raised through its named constructors, never built by hand."""
    package = Path(errors.__file__).parents[1]
    by_hand = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "errors.py" or path.parent.name != "api"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bApiError(\.of)?\(|\bErrorSpec\(", line)
    ]
    assert by_hand == []
