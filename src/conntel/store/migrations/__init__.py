"""Schema migrations, one folder per backend: NNNN_name.sql, applied in order."""

from __future__ import annotations

from importlib import resources


def migrations(backend: str) -> list[tuple[int, str]]:
    folder = resources.files(__name__) / backend
    found = [
        (int(entry.name.split("_", 1)[0]), entry.read_text())
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


def unknown_versions(backend: str, applied: set[int]) -> set[int]:
    """The versions a database records that this conntel has no migration for: a newer conntel made it."""
    return applied - {version for version, _ in migrations(backend)}
