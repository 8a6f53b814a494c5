"""The config commands as a user runs them: exit codes, messages, and nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.server_help import help_only_binary
from typer.testing import CliRunner

from llama_orchestrator.cli import build_app

runner = CliRunner()


def cli(home: Path, *args: str, input: str | None = None):
    return runner.invoke(build_app(), ["--home", str(home), *args], input=input, catch_exceptions=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


def test_create_writes_a_valid_config_and_refuses_to_overwrite(home: Path, model: Path) -> None:
    result = cli(home, "create", "qwen", "--model", str(model), "--port", "8011", "--ctx", "0", "--gpu-layers", "0",
                 "--threads", "3", "--", "--flash-attn", "on")
    assert result.exit_code == 0, result.output
    data = json.loads((home / "instances/qwen/config.json").read_text())
    assert data["server"]["port"] == 8011
    assert data["model"]["context_size"] == 0 and data["gpu"]["layers"] == 0 and data["model"]["threads"] == 3
    assert data["args"] == ["--flash-attn", "on"]
    assert (home / "schemas/instance.schema.json").is_file()
    again = cli(home, "create", "qwen", "--model", str(model))
    assert again.exit_code == 5
    assert "already exists" in again.output


def test_create_warns_of_a_model_without_a_chat_template_and_sets_an_idle_ttl(home: Path, tiny_model: Path) -> None:
    """The tiny model's file holds no chat template: llama-server would format chats as ChatML."""
    result = cli(home, "create", "lazy", "--model", str(tiny_model), "--on-demand", "--idle-ttl", "90")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # as wrapped for the terminal
    assert "warning: the model file holds no chat template" in out and "--chat-template-file" in out, out
    assert json.loads((home / "instances/lazy/config.json").read_text())["idle_ttl_s"] == 90
    # without --on-demand, an instance stopped for being idle would be started again by no request
    refused = cli(home, "create", "eager", "--model", str(tiny_model), "--idle-ttl", "90")
    assert refused.exit_code == 2 and "idle_ttl_s is for on_demand instances" in " ".join(refused.output.split())
    assert not (home / "instances/eager").exists()
    quiet = cli(home, "create", "templated", "--model", str(tiny_model), "--chat-template", "chatml")
    assert quiet.exit_code == 0 and "chat template" not in quiet.output, quiet.output


def test_create_picks_a_port_no_config_uses(home: Path, model: Path) -> None:
    assert cli(home, "create", "a", "--model", str(model)).exit_code == 0
    assert cli(home, "create", "b", "--model", str(model)).exit_code == 0
    ports = {json.loads((home / f"instances/{n}/config.json").read_text())["server"]["port"] for n in "ab"}
    assert len(ports) == 2


@pytest.mark.parametrize("name", ["../x", "CON", "a/b", "x" * 300, "Upper", ""])
def test_create_rejects_hostile_names_and_writes_nothing(home: Path, model: Path, name: str) -> None:
    result = cli(home, "create", name, "--model", str(model))
    assert result.exit_code == 2
    assert "NAME" in result.output
    assert not (home / "instances").exists() or list((home / "instances").iterdir()) == []


def test_create_with_a_missing_model_names_the_file(home: Path, tmp_path: Path) -> None:
    result = cli(home, "create", "a", "--model", str(tmp_path / "nope.gguf"))
    assert result.exit_code == 2
    assert "model file not found" in result.output and "nope.gguf" in result.output
    assert not (home / "instances/a").exists()


def test_create_with_a_non_gguf_file_says_what_it_is_unless_told_not_to_check(home: Path, tmp_path: Path) -> None:
    pointer = tmp_path / "qwen.gguf"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    result = cli(home, "create", "a", "--model", str(pointer))
    assert result.exit_code == 2
    assert "Git LFS pointer" in result.output and "--no-check" in result.output, result.output
    assert not (home / "instances/a").exists()
    assert cli(home, "create", "a", "--model", str(pointer), "--no-check").exit_code == 0


def test_create_refuses_arguments_its_llama_server_does_not_know_unless_told_not_to_check(
    home: Path, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = help_only_binary(tmp_path)
    monkeypatch.setenv("LLAMA_ORCH_LLAMA_SERVER", str(binary))
    result = cli(home, "create", "a", "--model", str(model), "--", "--flsh-attn", "on", "-c=4")
    assert result.exit_code == 2, result.output
    assert f"--flsh-attn is not a flag of {binary}; did you mean --flash-attn? (--no-check)" in result.output
    assert "-c=4: llama-server takes no --flag=value" in result.output
    assert not (home / "instances/a").exists()
    assert cli(home, "create", "a", "--model", str(model), "--", "--flash-attn", "on").exit_code == 0
    assert cli(home, "create", "b", "--model", str(model), "--no-check", "--", "--flsh-attn", "on").exit_code == 0


def test_create_with_a_port_clash_names_the_instance_and_the_option(home: Path, model: Path) -> None:
    assert cli(home, "create", "tiny", "--model", str(model), "--port", "8020").exit_code == 0
    result = cli(home, "create", "b", "--model", str(model), "--port", "8020")
    assert result.exit_code == 2
    assert ("<command line>: --port: port 8020 is already used by instance 'tiny'; pick another, "
            "or leave out --port to get a free one") in result.output
    assert "instances/b/config.json" not in result.output  # never written: not the place to look
    assert not (home / "instances/b").exists()


def test_create_on_the_gateway_port_says_it_is_the_gateways(home: Path, model: Path) -> None:
    home.mkdir(parents=True)
    (home / "orchestrator.json").write_text(json.dumps({"gateway": {"port": 18080}}))
    result = cli(home, "create", "gw", "--model", str(model), "--port", "18080")
    assert result.exit_code == 2
    assert "port 18080 is the gateway's (gateway.port in orchestrator.json); pick another" in result.output
    assert not (home / "instances/gw").exists()


def test_create_points_a_bad_option_at_the_option(home: Path, model: Path) -> None:
    result = cli(home, "create", "a", "--model", str(model), "--threads", "-5")
    assert result.exit_code == 2
    assert "<command line>: --threads: Input should be greater than or equal to -1" in result.output
    assert "config.json" not in result.output


def test_create_prints_file_bytes_and_paths_as_they_are(home: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`:x:` is an emoji code and `[q4]` a style tag to rich; paths and a file's first bytes print
    verbatim. (A short directory: `ls` cuts a model path wider than its column.)"""
    passwd = tmp_path_factory.mktemp("m") / "[q4]" / "a:x:b.gguf"
    passwd.parent.mkdir()
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    result = cli(home, "create", "bad", "--model", str(passwd))
    assert result.exit_code == 2
    assert "it starts with b'root:x:0' where a GGUF file starts with b'GGUF'" in result.output, result.output
    assert f"{passwd} is not a GGUF model file" in result.output
    assert cli(home, "create", "ok", "--model", str(passwd), "--no-check").exit_code == 0
    listed = cli(home, "ls")
    assert str(passwd) in listed.output, listed.output


def test_unusable_home_exits_7(tmp_path: Path, model: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(build_app(), ["--home", str(blocker / "home"), "create", "a", "--model", str(model)])
    assert result.exit_code == 7
    assert "not usable" in result.output


def test_validate_lists_every_problem_with_file_field_and_rule(home: Path, model: Path) -> None:
    (home / "instances/a").mkdir(parents=True)
    (home / "instances/a/config.json").write_text('{"model": {"path": "x", "contxt": 1}, "server": {"port": 99999}}')
    (home / "instances/b").mkdir()
    (home / "instances/b/config.json").write_text("{\n  \"model\": ,\n}")
    result = cli(home, "config", "validate")
    assert result.exit_code == 2
    out = result.output
    assert "instances/a/config.json: model.contxt: unknown key 'contxt'; did you mean 'context_size'?" in out
    assert "instances/a/config.json: server.port:" in out
    assert "instances/b/config.json:2:" in out and "invalid JSON" in out
    as_json = json.loads(cli(home, "config", "validate", "--json").stdout)
    assert {p["field"] for p in as_json} >= {"model.contxt", "server.port", ""}


def test_validate_lists_every_problem_in_one_run_whatever_else_is_wrong(home: Path, tmp_path: Path) -> None:
    (home / "instances/My Model").mkdir(parents=True)
    (home / "instances/My Model/config.json").write_text(json.dumps({
        "model": {"path": "nope.gguf"}, "server": {"port": 8001},
        "request_filters": {"strip_params": ["model", "stream"]},
    }))
    # a bad gateway.port hides no other problem of orchestrator.json
    gateway = {"port": "x", "api_keys_file": str(tmp_path / "k")}
    (home / "orchestrator.json").write_text(json.dumps({"gateway": gateway}))
    result = cli(home, "config", "validate", "--json")
    assert result.exit_code == 2
    found = {(Path(p["file"]).parent.name, p["field"]) for p in json.loads(result.stdout) if p["severity"] == "error"}
    assert {("home", "gateway.port"), ("home", "gateway.api_keys_file"), ("My Model", ""), ("My Model", "model.path"),
            ("My Model", "request_filters.strip_params")} <= found
    out = " ".join(cli(home, "config", "validate").output.split())  # as wrapped for the terminal
    assert "rename the directory to 'my-model'" in out and "'model', 'stream' cannot be filtered" in out


def test_create_names_every_option_that_breaks_a_rule(home: Path, model: Path) -> None:
    refused = cli(home, "create", "eager", "--model", str(model), "--preload", "--idle-ttl", "90")
    out = " ".join(refused.output.split())
    assert refused.exit_code == 2 and "2 problem(s)" in out, out
    assert "--preload: preload is for on_demand instances" in out and "--idle-ttl: idle_ttl_s is for on_demand" in out


def test_validate_reports_gateway_keys_the_daemon_could_not_read(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys.txt"  # named, not there: the gateway would refuse every request
    home.mkdir()
    (home / "orchestrator.json").write_text(json.dumps({"gateway": {"api_keys_file": str(keys)}}))
    result = cli(home, "config", "validate")
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())  # as wrapped for the terminal
    assert f"orchestrator.json: gateway.api_keys_file: cannot read gateway.api_keys_file '{keys}'" in out
    assert "refuses every request that needs a key" in out and "llama-orch up" in out
    keys.write_text("# nothing yet\n")
    assert "holds no key" in cli(home, "config", "validate").output
    keys.write_text("k1\n")
    assert cli(home, "config", "validate").exit_code == 0

    # a variable is read from the daemon's environment, which may differ from this one: a warning
    monkeypatch.delenv("LLAMA_ORCH_TEST_GW_KEYS", raising=False)
    (home / "orchestrator.json").write_text(json.dumps({"gateway": {"api_keys_env": "LLAMA_ORCH_TEST_GW_KEYS"}}))
    result = cli(home, "config", "validate", "--json")
    assert result.exit_code == 0
    (problem,) = json.loads(result.stdout)
    assert problem["field"] == "gateway.api_keys_env" and problem["severity"] == "warning"
    assert "'LLAMA_ORCH_TEST_GW_KEYS', but that variable is unset" in problem["message"]
    assert "llama-orch daemon start" in problem["message"]
    monkeypatch.setenv("LLAMA_ORCH_TEST_GW_KEYS", "k1,k2")
    assert json.loads(cli(home, "config", "validate", "--json").stdout) == []


def test_validate_unknown_instance_exits_4(home: Path) -> None:
    result = cli(home, "config", "validate", "ghost")
    assert result.exit_code == 4 and "no instance named 'ghost'" in result.output


def test_render_and_show(home: Path, model: Path) -> None:
    cli(home, "create", "a", "--model", str(model), "--port", "8030")
    rendered = cli(home, "config", "render", "a", "--json")
    argv = json.loads(rendered.stdout)["argv"]
    assert argv[argv.index("--port") + 1] == "8030" and "--host" in argv
    shown = json.loads(cli(home, "config", "show", "a").stdout)
    assert shown["health"]["interval_s"] == 10 and shown["restart"]["policy"] == "on-failure"


def test_schema_is_json_schema_for_both_files(home: Path) -> None:
    instance = json.loads(cli(home, "schema", "instance").stdout)
    assert instance["additionalProperties"] is False and "model" in instance["properties"]
    orchestrator = json.loads(cli(home, "schema", "orchestrator").stdout)
    assert "gateway" in orchestrator["properties"]
    assert cli(home, "schema", "bogus").exit_code == 2


def test_ls_and_rm(home: Path, model: Path) -> None:
    cli(home, "create", "a", "--model", str(model), "--port", "8040")
    (home / "logs").mkdir(exist_ok=True)
    (home / "logs/a.log").write_text("x")
    rows = json.loads(cli(home, "ls", "--json").stdout)
    assert rows[0]["name"] == "a" and rows[0]["port"] == 8040
    refused = cli(home, "rm", "a")  # no terminal, no -y: refuse, remove nothing
    assert refused.exit_code == 2 and (home / "instances/a/config.json").exists()
    assert cli(home, "rm", "a", "-y").exit_code == 0
    assert not (home / "instances/a").exists() and not (home / "logs/a.log").exists()
    assert cli(home, "rm", "a", "-y").exit_code == 4


def test_version_and_help_list_every_command(home: Path) -> None:
    assert "llama-orch 0.1.0" in cli(home, "--version").stdout
    help_text = cli(home, "--help").stdout
    for command in ("create", "ls", "rm", "up", "down", "start", "stop", "restart", "ps", "logs", "inspect",
                    "events", "config", "daemon", "service", "schema"):
        assert command in help_text


def test_create_preload_needs_on_demand_and_ls_says_how_each_starts(home: Path, model: Path) -> None:
    refused = cli(home, "create", "eager", "--model", str(model), "--preload")
    assert refused.exit_code == 2 and "preload is for on_demand instances" in refused.output
    assert not (home / "instances/eager").exists()
    assert cli(home, "create", "warm", "--model", str(model), "--on-demand", "--preload").exit_code == 0
    assert cli(home, "create", "lazy", "--model", str(model), "--on-demand").exit_code == 0
    rows = json.loads(cli(home, "ls", "--json").output)
    assert {r["name"]: r["start"] for r in rows} == {"warm": "on-demand, preload", "lazy": "on-demand"}


@pytest.mark.parametrize("command", ["logs", "events"])
def test_a_negative_tail_is_refused_before_anything_runs(home: Path, command: str) -> None:
    args = [command, "tiny"] if command == "logs" else [command]
    result = cli(home, *args, "-n", "-3")
    assert result.exit_code == 2 and "-3 is not in the range x>=0" in result.output, result.output


def test_create_refuses_a_misspelt_chat_template_name_and_says_the_closest(home: Path, model: Path) -> None:
    refused = cli(home, "create", "g2", "--model", str(model), "--chat-template", "gema")
    out = " ".join(refused.output.split())
    assert refused.exit_code == 2, out
    assert "--chat-template: chat_template 'gema' is neither one of llama.cpp's built-in template names" in out
    assert "did you mean 'gemma'?" in out and "Built-in names: bailing," in out
    assert not (home / "instances/g2").exists()
    assert cli(home, "create", "g2", "--model", str(model), "--chat-template", "gemma").exit_code == 0


def test_create_given_both_model_and_hf_says_to_give_one(home: Path, model: Path) -> None:
    both = cli(home, "create", "a", "--model", str(model), "--hf", "foo/bar")
    assert both.exit_code == 2 and "--hf: give --model or --hf, not both" in both.output, both.output
    neither = cli(home, "create", "a")
    assert neither.exit_code == 2 and "give the model as --model PATH or --hf REPO" in neither.output
    assert not (home / "instances/a").exists()


def test_create_warns_when_no_llama_server_could_check_its_arguments(
    home: Path, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLAMA_ORCH_LLAMA_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    none = cli(home, "create", "a", "--model", str(model), "--", "--ctx-sise", "5")
    assert none.exit_code == 0, none.output
    assert ("the extra arguments were not checked: no llama-server binary found; set LLAMA_ORCH_LLAMA_SERVER or "
            "builds.cpu in orchestrator.json") in " ".join(none.output.split())
    (home / "orchestrator.json").write_text(json.dumps({"builds": {"cpu": str(tmp_path / "gone/llama-server")}}))
    missing = cli(home, "create", "b", "--model", str(model), "--", "--ctx-sise", "5")
    assert missing.exit_code == 0, missing.output
    out = " ".join(missing.output.split())
    assert f"not checked against llama-server's flags: {tmp_path / 'gone/llama-server'} does not exist (builds.cpu)" \
        in out
    quiet = cli(home, "create", "c", "--model", str(model), "--no-check", "--", "--ctx-sise", "5")
    assert quiet.exit_code == 0 and "not checked" not in quiet.output  # told not to check: nothing to say


def test_validate_reports_a_configured_binary_that_cannot_run(home: Path, model: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain-file"
    plain.write_text("not a program")
    home.mkdir()
    (home / "orchestrator.json").write_text(json.dumps({"builds": {"cpu": str(tmp_path / "gone/llama-server"),
                                                                   "vulkan": str(tmp_path / "gone/vk")}}))
    assert cli(home, "create", "a", "--model", str(model), "--no-check").exit_code == 0
    config = home / "instances/a/config.json"
    config.write_text(json.dumps(json.loads(config.read_text()) | {"binary": str(plain)}))
    result = cli(home, "config", "validate")
    out = " ".join(result.output.split())
    assert result.exit_code == 2, out
    assert f"builds.cpu: {tmp_path / 'gone/llama-server'} does not exist: point it at a llama-server binary" in out
    assert f"config.json: binary: {plain} is not executable" in out
    # a build no instance uses (a path shared with another machine) only warns
    assert f"warning orchestrator.json: builds.vulkan: {tmp_path / 'gone/vk'} does not exist" in out.replace(
        str(home) + "/", ""), out
    offline = cli(home, "config", "validate", "--offline")
    assert offline.exit_code == 0 and "warning" in offline.output and "is not executable" in offline.output


def test_create_prints_the_warnings_validate_would_give_the_new_instance(home: Path, model: Path) -> None:
    assert cli(home, "create", "gemma", "--model", str(model), "--no-check").exit_code == 0
    dup = cli(home, "create", "dup2", "--model", str(model), "--alias", "gemma", "--no-check")
    assert dup.exit_code == 0, dup.output
    out = " ".join(dup.output.split())
    assert "alias 'gemma' is shared by dup2, gemma: requests are balanced across them" in out
    exposed = cli(home, "create", "open", "--model", str(model), "--host", "0.0.0.0", "-ngl", "99", "--no-check")
    assert exposed.exit_code == 0, exposed.output
    out = " ".join(exposed.output.split())
    assert "server.host" in out and "set server.api_key_env or server.api_key_file" in out
    assert "ignores gpu.layers 99" in out
    assert "shared by" not in out  # the warnings of other instances are not the new one's


def test_create_warns_of_a_port_another_program_holds_now(home: Path, model: Path) -> None:
    import os
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        held = cli(home, "create", "a", "--model", str(model), "-p", str(port), "--no-check")
    assert held.exit_code == 0, held.output  # the holder may be gone by the start
    out = " ".join(held.output.split())
    assert f"port-in-use: 127.0.0.1:{port} is held by pid {os.getpid()}" in out
    assert "pick another --port" in out
    assert json.loads((home / "instances/a/config.json").read_text())["server"]["port"] == port


@pytest.mark.parametrize("command", ["up", "down", "start", "stop", "restart"])
@pytest.mark.parametrize("timeout", ["0", "-1", "inf"])
def test_a_timeout_that_is_no_positive_number_is_refused_before_anything_runs(
    tmp_path: Path, command: str, timeout: str
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")  # an unusable home: were the option let through, the command would exit 7 at once
    result = runner.invoke(build_app(), ["--home", str(blocker / "home"), command, "a", "--timeout", timeout])
    out = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2, out
    assert f"{timeout} is not a positive, finite number of seconds; leave --timeout out to wait without limit" in out
