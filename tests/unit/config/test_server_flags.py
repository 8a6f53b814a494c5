"""Command lines checked against a llama-server's own `--help`: parsing it, and what gets refused."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.server_help import HELP

from llama_orchestrator.config.loader import load_fleet
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.config.server_flags import ServerFlags, argument_problems, config_problems, parse_help


def flags() -> ServerFlags:
    parsed = parse_help(HELP)
    assert parsed is not None
    return parsed


def config(**overrides: object) -> InstanceConfig:
    data: dict[str, object] = {"name": "a", "model": {"path": "/m/x.gguf"}, "server": {"port": 8001}}
    data.update(overrides)
    return InstanceConfig.model_validate(data)


def test_help_gives_every_alias_with_its_number_of_values() -> None:
    values = flags().values
    switches = ("-h", "--help", "--usage", "--jinja", "--no-jinja", "--embeddings")
    assert {k: values[k] for k in switches} == dict.fromkeys(switches, 0)
    assert values["-ngl"] == values["--gpu-layers"] == values["--n-gpu-layers"] == 1
    assert values["-fa"] == values["-ot"] == values["--chat-template"] == 1
    assert values["--control-vector-layer-range"] == 2
    assert not any(flag.startswith("---") or " " in flag for flag in values)


def test_help_of_another_shape_is_not_judged() -> None:
    argparse_help = "usage: fake [-h]\n\noptions:\n  -h, --help  show this help\n  --port PORT\n"
    assert parse_help(argparse_help) is None
    assert parse_help("") is None


def test_known_arguments_pass_and_values_are_skipped_even_when_they_look_like_numbers() -> None:
    args = ["-ngl", "-1", "-fa", "on", "--control-vector-layer-range", "0", "-3", "--no-jinja", "-ot", "x=CPU"]
    assert argument_problems(args, flags()) == []


def test_a_misspelt_flag_names_the_nearest_one_and_its_value_is_not_a_second_problem() -> None:
    assert argument_problems(["--ctx-sise", "512", "-t", "2"], flags(), "/opt/llama-server") == [
        "--ctx-sise is not a flag of /opt/llama-server; did you mean --ctx-size?"]
    assert argument_problems(["--frobnicate"], flags()) == [
        "--frobnicate is not a flag of this llama-server; see its --help"]


def test_flag_equals_value_and_stray_values_are_refused_as_llama_server_refuses_them() -> None:
    assert argument_problems(["--ctx-size=512", "-c", "8", "9"], flags()) == [
        "--ctx-size=512: llama-server takes no --flag=value; give --ctx-size and '512' as two arguments",
        "'9' follows no flag that takes a value",
    ]


def test_config_problems_name_args_or_a_binary_too_old_for_what_the_orchestrator_renders() -> None:
    old = parse_help(HELP.replace("--jinja, --no-jinja", "--jinja        "))
    assert old is not None
    found = config_problems(config(model={"path": "/m/x.gguf", "chat_template": "gemma"}, args=["--ctx-sise", "1"]),
                            "/old/llama-server", old)
    assert [field for field, _ in found] == ["binary", "args"]
    assert "/old/llama-server is older than this config needs: --no-jinja is not a flag" in found[0][1]
    assert "`llama-orch config render a`" in found[0][1]
    assert found[1][1] == "--ctx-sise is not a flag of /old/llama-server; did you mean --ctx-size?"
    assert config_problems(config(model={"path": "/m/x.gguf", "chat_template": "gemma"}), "x", flags()) == []


def test_validate_reports_them_as_errors_only_when_not_offline(tmp_path: Path) -> None:
    home = HomePaths(tmp_path / "home")
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    path = home.instance_config("a")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"name": "a", "model": {"path": str(model)}, "server": {"port": 8001},
                                "args": ["--n-gpu-layer", "99"]}))
    asked: list[str] = []

    def flags_of(binary: str) -> ServerFlags | None:
        asked.append(binary)
        return flags()

    fleet = load_fleet(home, which=lambda _: "/usr/bin/llama-server", flags_of=flags_of)
    assert [(p.field, p.message, p.severity) for p in fleet.problems] == [
        ("args", "--n-gpu-layer is not a flag of /usr/bin/llama-server; did you mean --n-gpu-layers?", "error")]
    assert asked == ["/usr/bin/llama-server"]
    assert load_fleet(home, offline=True, which=lambda _: "/usr/bin/llama-server", flags_of=flags_of).problems == []
    assert load_fleet(home, which=lambda _: "/usr/bin/llama-server", flags_of=lambda _: None).problems == []
    assert asked == ["/usr/bin/llama-server"]  # offline asks nothing
