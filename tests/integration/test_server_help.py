"""Reading a llama-server's flags from its `--help` (engine.server_help), on real binaries."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest
from tests.support.waiting import wait_until

from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.config.server_flags import config_problems
from llama_orchestrator.engine import server_help

pytestmark = pytest.mark.integration

EVERY_SETTING = {
    "name": "all",
    "model": {"path": "/m/x.gguf", "alias": "x", "context_size": 4096, "batch_size": 512, "ubatch_size": 128,
              "threads": 2, "parallel": 2, "embeddings": True, "chat_template": "gemma"},
    "gpu": {"backend": "vulkan", "devices": [0], "layers": 99, "split_mode": "layer", "main_gpu": 0,
            "tensor_split": [1, 1]},
    "server": {"port": 8001, "api_key_file": "/k", "metrics": True, "timeout_s": 60},
}


@pytest.mark.real_server
def test_the_real_server_knows_every_flag_the_orchestrator_renders(llama_server_bin: Path) -> None:
    flags = server_help.server_flags(str(llama_server_bin))
    assert flags is not None and len(flags.values) > 200
    for overrides in ({}, {"model": {**EVERY_SETTING["model"], "chat_template": "{{ x }}", "jinja": True}}):  # type: ignore[dict-item]
        config = InstanceConfig.model_validate({**EVERY_SETTING, **overrides})
        assert config_problems(config, str(llama_server_bin), flags) == []
    bad = InstanceConfig.model_validate({**EVERY_SETTING, "args": ["--ctx-sise", "1", "--flash-attn=on"]})
    assert [message for _, message in config_problems(bad, "ls", flags)] == [
        "--ctx-sise is not a flag of ls; did you mean --ctx-size?",
        "--flash-attn=on: llama-server takes no --flag=value; give --flash-attn and 'on' as two arguments",
    ]


def test_a_binary_asked_once_per_build_and_again_when_rebuilt(tmp_path: Path, llama_server_bin: Path) -> None:
    log = tmp_path / "asked"
    binary = tmp_path / "llama-server"
    binary.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{llama_server_bin}" "$@"\n')
    binary.chmod(0o755)
    first = server_help.server_flags(str(binary))
    assert first is not None and server_help.server_flags(str(binary)) is first
    assert log.read_text().splitlines() == ["--help"]
    stat = binary.stat()
    os.utime(binary, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert server_help.server_flags(str(binary)) is not None
    assert log.read_text().splitlines() == ["--help", "--help"]


def test_a_wrapper_that_ignores_help_is_ended_with_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "server.pid"
    wrapper = tmp_path / "my-llama"
    wrapper.write_text(f'#!/bin/sh\nsleep 300 &\necho $! > "{pid_file}"\nwait\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(server_help, "HELP_TIMEOUT_S", 1.0)
    assert server_help.server_flags(str(wrapper)) is None
    started = int(pid_file.read_text())
    wait_until(lambda: not psutil.pid_exists(started) or psutil.Process(started).status() == psutil.STATUS_ZOMBIE,
               5, 0.02, "the wrapper's sleep ends with it")


def test_what_cannot_be_asked_gives_none(tmp_path: Path, fake_server_py: Path) -> None:
    not_executable = tmp_path / "llama-server"
    not_executable.write_text("not a program")
    failing = tmp_path / "failing"
    failing.write_text("#!/bin/sh\necho 'error: something' >&2\nexit 1\n")
    failing.chmod(0o755)
    fake = tmp_path / "fake"
    fake.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake_server_py}" "$@"\n')
    fake.chmod(0o755)
    for binary in (str(tmp_path / "missing"), "no-such-llama-server-on-path", str(not_executable), str(failing),
                   str(fake)):
        assert server_help.server_flags(binary) is None, binary
