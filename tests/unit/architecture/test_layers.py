"""Rules import-linter cannot state: the pure core does no I/O, and third-party packages stay in their layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import llama_orchestrator

PACKAGE = Path(llama_orchestrator.__file__).parent

#: Modules a package may not import (the top-level name of each import is checked).
FORBIDDEN = {
    "core": {"asyncio", "subprocess", "socket", "sqlite3", "time", "random", "os", "aiohttp", "psutil", "typer",
             "rich", "textual", "threading"},
    # config may import subprocess for list2cmdline only (pure Windows quoting in argv.py).
    "config": {"asyncio", "sqlite3", "aiohttp", "psutil", "typer", "rich", "textual"},
    "store": {"aiohttp", "psutil", "subprocess", "typer", "rich", "textual"},
    "gateway": {"sqlite3", "subprocess", "psutil", "typer", "rich", "textual"},
    "health": {"sqlite3", "subprocess", "psutil", "typer", "rich", "textual"},
    "engine": {"sqlite3", "aiohttp", "typer", "rich", "textual"},
    "autostart": {"sqlite3", "aiohttp", "psutil", "typer", "rich", "textual"},
    "tui": {"sqlite3", "subprocess", "typer"},
    "hub": {"sqlite3", "subprocess", "psutil", "aiohttp", "typer", "rich", "textual"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_in_their_layer(package: str) -> None:
    offenders = {}
    for path in sorted((PACKAGE / package).rglob("*.py")):
        bad = imported_modules(path) & FORBIDDEN[package]
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert offenders == {}


def test_windows_modules_import_on_every_platform() -> None:
    import importlib

    for path in sorted(PACKAGE.rglob("*windows*.py")):
        module = ".".join(("llama_orchestrator", *path.relative_to(PACKAGE).with_suffix("").parts))
        importlib.import_module(module)  # must not touch win32 APIs at import time


def test_public_surface() -> None:
    assert llama_orchestrator.__all__ == ["__version__"]
    assert llama_orchestrator.__version__.count(".") == 2


def test_test_file_names_are_unique() -> None:
    """pytest imports test modules by basename (no __init__.py in test folders): two files with one
    name break collection of the whole suite."""
    tests = Path(__file__).parents[2]
    names: dict[str, list[str]] = {}
    for path in tests.rglob("test_*.py"):
        names.setdefault(path.name, []).append(str(path.relative_to(tests)))
    assert {n: p for n, p in names.items() if len(p) > 1} == {}
