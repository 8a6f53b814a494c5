"""`${env:NAME}` in config strings."""

from __future__ import annotations

import json
from pathlib import Path

from llama_orchestrator.config.env_refs import expand_env_refs
from llama_orchestrator.config.loader import load_fleet
from llama_orchestrator.config.paths import HomePaths


def test_references_in_strings_are_replaced_anywhere_and_keys_and_other_values_are_left() -> None:
    raw = {"model": {"path": "${env:MODELS}/q.gguf", "context_size": 4096},
           "args": ["--lora", "${env:MODELS}/${env:LORA}"], "env": {"${env:MODELS}": "x"}, "on_demand": True}
    value, problems = expand_env_refs(raw, {"MODELS": "/srv/m", "LORA": "a.gguf"}, fold_case=False)
    assert problems == []
    assert value == {"model": {"path": "/srv/m/q.gguf", "context_size": 4096},
                     "args": ["--lora", "/srv/m/a.gguf"], "env": {"${env:MODELS}": "x"}, "on_demand": True}


def test_an_unset_or_unnamed_variable_is_a_problem_at_its_field() -> None:
    _, problems = expand_env_refs({"model": {"path": "${env:NOPE}/x"}, "args": ["${env:}", "${env:A-B}"]}, {},
                                  fold_case=False)
    assert [field for field, _ in problems] == ["model.path", "args.0", "args.1"]
    assert "environment variable NOPE is not set (the config uses ${env:NOPE})" in problems[0][1]
    assert "'${env:}' does not name a variable" in problems[1][1]


def test_names_fold_case_as_windows_does() -> None:
    assert expand_env_refs("${env:Models}", {"MODELS": "D:/m"}, fold_case=True) == ("D:/m", [])
    assert expand_env_refs("${env:Models}", {"MODELS": "D:/m"}, fold_case=False)[1] != []


def test_the_loader_expands_instances_and_orchestrator_json_with_the_environment_it_is_given(tmp_path: Path) -> None:
    home = HomePaths(tmp_path / "home")
    models = tmp_path / "models"
    models.mkdir()
    (models / "m.gguf").write_bytes(b"GGUF")
    home.home.mkdir(parents=True)
    home.orchestrator_file.write_text(json.dumps({"gateway": {"port": "${env:GW_PORT}"},
                                                  "defaults": {"env": {"TOKEN": "${env:TOKEN}"}}}))
    path = home.instance_config("a")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"model": {"path": "${env:MODELS}/m.gguf"}, "server": {"port": 8001}}))
    environ = {"MODELS": str(models), "GW_PORT": "8100", "TOKEN": "t0k"}
    fleet = load_fleet(home, environ=environ, which=lambda _: "/usr/bin/llama-server")
    assert fleet.problems == []
    assert fleet.instances["a"].model.path == str(models / "m.gguf")
    assert fleet.instances["a"].env == {"TOKEN": "t0k"}
    assert fleet.orchestrator.gateway.port == 8100

    fleet = load_fleet(home, environ={"GW_PORT": "8100", "TOKEN": "t"}, which=lambda _: "/usr/bin/llama-server")
    assert [(Path(p.file).name, p.field) for p in fleet.errors] == [("config.json", "model.path")]
    assert "MODELS is not set" in fleet.errors[0].message
    assert "a" not in fleet.instances
