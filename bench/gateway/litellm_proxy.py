"""LiteLLM proxy (from PyPI) as the Python-gateway baseline: 1 uvicorn worker, no database, nothing remote.

LiteLLM pins its own dependencies tightly, so it lives in its own virtualenv, never in the
project's `.venv`:

    .venv/bin/python -m bench.gateway --install-litellm     # once: creates VENV below (~750 MB)

Without that venv the LiteLLM target is skipped with a note. The proxy gets a generated config
that maps the bench model to the upstream as a plain OpenAI-compatible endpoint
(`openai/bench`, `api_base http://127.0.0.1:PORT/v1`, dummy key), no master key, no database,
spend/error logs off, and an environment that keeps it offline: the bundled model cost map
(`LITELLM_LOCAL_MODEL_COST_MAP`), no `.env` loading (`LITELLM_MODE=PRODUCTION`), no docs routes.
`DISABLE_ADMIN_UI` hides the admin UI; its static files are still mounted at /ui, off the request path.
Telemetry: `telemetry: false` in the config (a no-op since LiteLLM dropped it; it sends none).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SPEC = "litellm[proxy]>=1.106,<1.107"  # 1.106.2 verified; newer needs deps newer than the index had
VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llama-orchestrator" / "bench-litellm" / "venv"
MODEL = "bench"  # the name the load generator asks for

CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: http://127.0.0.1:{up_port}/v1
      api_key: sk-bench-dummy
litellm_settings:
  telemetry: false
  set_verbose: false
  json_logs: false
general_settings:
  # no master key, like the other targets (no auth); 1.106 refuses to start without one unless told
  dangerously_permit_weak_or_unset_master_key: true
  disable_spend_logs: true
  disable_error_logs: true
  disable_adding_master_key_hash_to_db: true
  allow_requests_on_db_unavailable: true
"""

ENV = {
    "LITELLM_LOG": "ERROR",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # else it fetches the cost map from the internet at import
    "LITELLM_MODE": "PRODUCTION",  # DEV (the default) loads a .env from the working directory
    "NO_DOCS": "True",
    "NO_REDOC": "True",
    "DISABLE_ADMIN_UI": "True",
    "PYTHONUNBUFFERED": "1",
}


def binary() -> Path | None:
    exe = VENV / "bin" / "litellm"
    return exe if exe.exists() else None


def version() -> str | None:
    py = VENV / "bin" / "python"
    if not py.exists():
        return None
    out = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or None


def skip_note() -> str:
    return (f"LiteLLM proxy: skipped (no venv at {VENV}); enable it with "
            "`.venv/bin/python -m bench.gateway --install-litellm` (PyPI, ~1 min, ~750 MB, its own venv)")


def install() -> str:
    """Create VENV (on this interpreter's base Python, sharing nothing with .venv) and install SPEC into it."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print(f"installing {SPEC} into {VENV} (~1 min)", flush=True)
    subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", SPEC], check=True)
    v = version()
    if v is None or binary() is None:
        raise RuntimeError(f"litellm did not install into {VENV}")
    return v


def command(workdir: Path, port: int, up_port: int) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) for the proxy on 127.0.0.1:port in front of the upstream on up_port.

    Writes the config into workdir. Ready when /health/liveliness answers 200 (~7 s on an idle 2-core
    machine); one uvicorn worker, so a SIGTERM to its process group stops all of it.
    """
    exe = binary()
    assert exe is not None
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "litellm.yaml"
    conf.write_text(CONFIG.format(model=MODEL, up_port=up_port))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LITELLM_", "OPENAI_")) and k not in ("DATABASE_URL", "REDIS_HOST", "REDIS_URL")}
    env.update(ENV)
    return [str(exe), "--config", str(conf), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"], env
