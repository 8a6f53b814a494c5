"""Config → the exact llama-server command line and environment (pure: no file or env access).

Rules that matter: `--host` and `--port` are always explicit (llama-server's own default port is
moving from 8080 to 9931); `None` is omitted and `0` is rendered; an API key never appears in
argv (other users can read `/proc/<pid>/cmdline`): a key file goes through `--api-key-file`, a key
from the environment goes through `LLAMA_API_KEY`; a built-in chat template name brings
`--no-jinja` (config.chat_templates); extra `args` come last, in order.
"""

from __future__ import annotations

import difflib
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llama_orchestrator._platform import PLATFORM, PlatformName
from llama_orchestrator.config.chat_templates import needs_legacy_path
from llama_orchestrator.config.models import InstanceConfig

_DEVICE_PREFIX = {"vulkan": "Vulkan", "cuda": "CUDA", "rocm": "ROCm", "metal": "MTL"}
SECRET_ENV = frozenset({"LLAMA_API_KEY"})


@dataclass(frozen=True)
class LaunchCommand:
    """What to run: argv (a list, never a shell string) and the extra environment."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def redacted_env(self) -> dict[str, str]:
        return {k: ("<redacted>" if k in SECRET_ENV else v) for k, v in self.env.items()}


def _flag(argv: list[str], name: str, value: object) -> None:
    if value is None:
        return
    argv += [name, str(value)]


def build_command(config: InstanceConfig, binary: str, environ: Mapping[str, str]) -> LaunchCommand:
    """Render `config` as the llama-server argv and env; `environ` supplies `api_key_env`."""
    model, server, gpu = config.model, config.server, config.gpu
    argv = [binary, "-m", model.path, "--host", server.host, "--port", str(server.port)]
    argv += ["--alias", config.served_name]
    _flag(argv, "-c", model.context_size)
    _flag(argv, "-b", model.batch_size)
    _flag(argv, "-ub", model.ubatch_size)
    _flag(argv, "-t", model.threads)
    _flag(argv, "-np", model.parallel)
    if model.embeddings:
        argv.append("--embeddings")
    _flag(argv, "--chat-template", model.chat_template)
    if model.jinja is not None or needs_legacy_path(model.chat_template):
        argv.append("--jinja" if model.jinja else "--no-jinja")  # a built-in name works only without Jinja
    _flag(argv, "-ngl", gpu.layers)
    if gpu.devices is not None and gpu.backend in _DEVICE_PREFIX:
        prefix = _DEVICE_PREFIX[gpu.backend]
        argv += ["--device", ",".join(f"{prefix}{d}" for d in gpu.devices) or "none"]
    _flag(argv, "-sm", gpu.split_mode)
    _flag(argv, "-mg", gpu.main_gpu)
    if gpu.tensor_split is not None:
        argv += ["-ts", ",".join(f"{v:g}" for v in gpu.tensor_split)]
    _flag(argv, "--api-key-file", server.api_key_file)
    if server.metrics:
        argv.append("--metrics")
    _flag(argv, "-to", server.timeout_s)
    argv += config.args
    env = dict(config.env)
    if server.api_key_env and server.api_key_env in environ:
        env["LLAMA_API_KEY"] = environ[server.api_key_env]
    return LaunchCommand(argv, env)


def quote_command(argv: list[str], platform: PlatformName = PLATFORM) -> str:
    """Quote argv for pasting into this platform's shell (cmd/PowerShell rules on Windows)."""
    if platform == "windows":
        return subprocess.list2cmdline(argv)
    return shlex.join(argv)


def command_change(running: Sequence[str], running_env: Mapping[str, str] | None, wanted: LaunchCommand) -> str | None:
    """What differs between the command a process runs with and the one its config renders now,
    in a few words (`-c 4096 → -c 8192; added --flash-attn on`), or None. `running_env` None: not
    known (an adopted process); only names of changed variables are said, never their values."""
    parts = []
    if running[:1] != wanted.argv[:1]:
        parts.append(f"binary {_short(running[:1])} → {_short(wanted.argv[:1])}")
    old_args, new_args = list(running[1:]), wanted.argv[1:]
    matcher = difflib.SequenceMatcher(a=old_args, b=new_args, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        flag: list[str] = []  # a changed value is shown with its flag: `-c 4096 → -c 8192`, not `4096 → 8192`
        if tag == "replace" and i1 and old_args[i1 - 1].startswith("-") and not old_args[i1].startswith("-"):
            flag = [old_args[i1 - 1]]
        old, new = _short(flag + old_args[i1:i2]), _short(flag + new_args[j1:j2])
        if tag == "replace":
            parts.append(f"{old} → {new}")
        elif tag == "delete":
            parts.append(f"removed {old}")
        elif tag == "insert":
            parts.append(f"added {new}")
    if running_env is not None:
        names = sorted(k for k in {*running_env, *wanted.env} if running_env.get(k) != wanted.env.get(k))
        if names:
            parts.append("environment " + ", ".join(names))
    return "; ".join(parts) or None


def _short(args: Sequence[str], limit: int = 60) -> str:
    text = " ".join(args)
    return text if len(text) <= limit else text[: limit - 1] + "…"
