"""Validation that helps: every problem found, each with file, field path and rule."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from tests.support.tiny_model import N_CTX

from llama_orchestrator.config.loader import load_fleet, require_valid
from llama_orchestrator.config.names import check_instance_name
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.errors import ConfigError


def write_instance(home: Path, name: str, data: object | str) -> Path:
    path = home / "instances" / name / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def minimal(name: str, port: int, model: Path) -> dict[str, object]:
    return {"name": name, "model": {"path": str(model)}, "server": {"port": port}}


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    return path


@pytest.fixture
def home(tmp_path: Path) -> HomePaths:
    return HomePaths(tmp_path / "home")


def fields(fleet, severity="error"):
    return {(Path(p.file).parent.name, p.field) for p in fleet.problems if p.severity == severity}


def test_valid_instance_loads_with_defaults(home: HomePaths, model_file: Path) -> None:
    write_instance(home.home, "a", minimal("a", 8001, model_file))
    fleet = load_fleet(home, which=lambda _: "/usr/bin/llama-server")
    assert fleet.errors == []
    config = fleet.instances["a"]
    assert config.health.interval_s == 10 and config.restart.backoff_max_s == 300
    assert config.served_name == "a"


def test_unknown_key_suggests_nearest(home: HomePaths, model_file: Path) -> None:
    data = minimal("a", 8001, model_file) | {"restart_polcy": {}}
    data["model"] = {"path": str(model_file), "contxt_size": 10}
    write_instance(home.home, "a", data)
    fleet = load_fleet(home, which=lambda _: "x")
    messages = {p.field: p.message for p in fleet.errors}
    assert "did you mean 'restart'" in messages["restart_polcy"]
    assert "did you mean 'context_size'" in messages["model.contxt_size"]


def test_every_problem_is_reported_at_once(home: HomePaths, model_file: Path) -> None:
    write_instance(home.home, "broken-json", '{"name": "broken-json",\n  "model": {,}\n}')
    write_instance(home.home, "types", {"name": "types", "model": {"path": str(model_file), "context_size": "abc"},
                                        "server": {"port": 70000}, "gpu": {"layers": "lots"}})
    write_instance(home.home, "clash1", minimal("clash1", 8005, model_file))
    write_instance(home.home, "clash2", minimal("clash2", 8005, model_file))
    write_instance(home.home, "nomodel", minimal("nomodel", 8006, model_file.parent / "missing.gguf"))
    fleet = load_fleet(home, which=lambda _: "x")
    found = fields(fleet)
    assert ("broken-json", "") in found
    assert {("types", "model.context_size"), ("types", "server.port"), ("types", "gpu.layers")} <= found
    assert {("clash1", "server.port"), ("clash2", "server.port")} <= found
    assert ("nomodel", "model.path") in found
    broken = next(p for p in fleet.errors if "broken-json" in p.file)
    assert broken.line == 2 and broken.column is not None
    with pytest.raises(ConfigError) as caught:
        require_valid(fleet)
    assert len(caught.value.problems) == len(fleet.errors) >= 7


def test_offline_makes_missing_model_a_warning(home: HomePaths, tmp_path: Path) -> None:
    write_instance(home.home, "a", minimal("a", 8001, tmp_path / "nope.gguf"))
    fleet = load_fleet(home, offline=True, which=lambda _: None)
    assert fleet.errors == []
    assert ("a", "model.path") in fields(fleet, "warning")


def test_more_context_per_slot_than_the_model_was_trained_for_is_a_warning(home: HomePaths, tiny_model: Path) -> None:
    def warned(model: dict[str, object], args: list[str] | None = None, offline: bool = False) -> list[str]:
        write_instance(home.home, "a", minimal("a", 8001, tiny_model) | {"model": {"path": str(tiny_model), **model},
                                                                          "args": args or []})
        fleet = load_fleet(home, offline=offline, which=lambda _: "x")
        assert fleet.errors == []
        return [p.message for p in fleet.warnings if p.field == "model.context_size"]

    [message] = warned({"context_size": 2 * N_CTX})
    assert message.startswith(f"{2 * N_CTX} tokens per slot is more than the {N_CTX} this model was trained for: "
                              f"llama-server caps a request at {N_CTX}")
    assert warned({"context_size": 2 * N_CTX, "parallel": 2}) == []  # a slot gets the trained length
    assert len(warned({"context_size": 2 * N_CTX, "parallel": 2}, ["--kv-unified"])) == 1  # one request gets all
    assert warned({"context_size": N_CTX}) == [] and warned({"context_size": 0}) == []
    assert warned({"context_size": 4 * N_CTX}, ["--rope-scaling", "yarn"]) == []  # extended on purpose
    assert warned({"context_size": 2 * N_CTX}, offline=True) == []  # the model file is read only by validate


def test_an_on_demand_model_over_its_memory_budget_alone_is_a_warning(home: HomePaths, tiny_model: Path) -> None:
    def warned(budget: dict[str, float], **extra: object) -> list[str]:
        write_instance(home.home, "a", minimal("a", 8001, tiny_model) | {"on_demand": True, **extra})
        home.orchestrator_file.write_text(json.dumps({"gateway": budget}))
        fleet = load_fleet(home, which=lambda _: "x")
        assert fleet.errors == []
        return [p.message for p in fleet.warnings if p.field == "memory_gib"]

    [message] = warned({"ram_budget_gib": 0.01})  # the tiny model's estimate is ~66 MiB: its overhead
    assert message.startswith("it is estimated at ~") and ": more than gateway.ram_budget_gib=0.01, so the " \
        "gateway will refuse to start it; raise the budget, lower model.context_size, or set memory_gib" in message
    assert warned({"ram_budget_gib": 1}) == []
    assert warned({"vram_budget_gib": 0.01}) == []  # a CPU instance counts against the RAM budget only
    [declared] = warned({"vram_budget_gib": 1}, memory_gib=2, gpu={"backend": "vulkan"})
    assert declared.startswith("its memory_gib is 2: more than gateway.vram_budget_gib=1")
    assert warned({"ram_budget_gib": 0.01}, on_demand=False) == []  # the daemon starts it whatever the budget


def test_a_model_file_that_is_not_gguf_is_an_error_naming_what_it_is(home: HomePaths, tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes((2).to_bytes(8, "little") + b'{"__metadata__": {}}')
    write_instance(home.home, "a", minimal("a", 8001, weights))
    [problem] = [p for p in load_fleet(home, which=lambda _: "x").errors if p.field == "model.path"]
    assert str(weights) in problem.message and "is a safetensors file: convert it to GGUF" in problem.message
    assert ("a", "model.path") in fields(load_fleet(home, offline=True, which=lambda _: "x"), "warning")


def test_zero_is_a_value_and_null_is_unset(home: HomePaths, model_file: Path) -> None:
    data = minimal("a", 8001, model_file)
    data["gpu"] = {"layers": 0}
    data["model"] = {"path": str(model_file), "context_size": None}
    write_instance(home.home, "a", data)
    config = load_fleet(home, which=lambda _: "x").instances["a"]
    assert config.gpu.layers == 0
    assert config.model.context_size is None


def test_port_clash_with_gateway(home: HomePaths, model_file: Path) -> None:
    home.home.mkdir(parents=True)
    home.orchestrator_file.write_text(json.dumps({"gateway": {"port": 8001}}))
    write_instance(home.home, "a", minimal("a", 8001, model_file))
    fleet = load_fleet(home, which=lambda _: "x")
    assert any("gateway" in p.message for p in fleet.errors)


def test_https_needs_both_the_certificate_and_its_key(home: HomePaths) -> None:
    home.home.mkdir(parents=True)
    home.orchestrator_file.write_text(json.dumps({"gateway": {"tls_cert_file": "/etc/gw/cert.pem"}}))
    fleet = load_fleet(home, which=lambda _: "x")
    assert [(p.field, p.message) for p in fleet.errors] == [
        ("gateway", "HTTPS needs both tls_cert_file and tls_key_file (or neither, for plain HTTP)")]


def test_a_group_without_a_limit_or_on_an_always_on_instance_is_a_warning(home: HomePaths, model_file: Path) -> None:
    home.home.mkdir(parents=True)
    home.orchestrator_file.write_text(json.dumps({"gateway": {"group_limits": {"big": 1}}}))
    write_instance(home.home, "a", {**minimal("a", 8001, model_file), "group": "bigg", "on_demand": True})
    write_instance(home.home, "b", {**minimal("b", 8002, model_file), "group": "big"})
    write_instance(home.home, "c", {**minimal("c", 8003, model_file), "group": "big", "on_demand": True})
    fleet = load_fleet(home, which=lambda _: "x")
    assert fleet.errors == []
    warned = {Path(p.file).parent.name: p.message for p in fleet.problems if p.field == "group"}
    assert warned.keys() == {"a", "b"}
    assert "group 'bigg' has no limit in orchestrator.json gateway.group_limits" in warned["a"]
    assert "on_demand instances only" in warned["b"]


def test_name_must_match_directory(home: HomePaths, model_file: Path) -> None:
    write_instance(home.home, "a", minimal("b", 8001, model_file))
    assert ("a", "name") in fields(load_fleet(home, which=lambda _: "x"))


def test_owned_flags_rejected_in_args(home: HomePaths, model_file: Path) -> None:
    data = minimal("a", 8001, model_file) | {"args": ["--host", "0.0.0.0"]}
    write_instance(home.home, "a", data)
    messages = [p.message for p in load_fleet(home, which=lambda _: "x").errors]
    assert any("--host is set by the orchestrator" in m for m in messages)


def test_defaults_merge_under_instances_and_bad_defaults_reported(home: HomePaths, model_file: Path) -> None:
    home.home.mkdir(parents=True)
    home.orchestrator_file.write_text(json.dumps({"defaults": {"health": {"interval_s": 2}, "restrat": {}}}))
    write_instance(home.home, "a", minimal("a", 8001, model_file))
    fleet = load_fleet(home, which=lambda _: "x")
    assert any(p.field == "defaults.restrat" and p.file.endswith("orchestrator.json") for p in fleet.errors)
    home.orchestrator_file.write_text(json.dumps({"defaults": {"health": {"interval_s": 2}}}))
    fleet = load_fleet(home, which=lambda _: "x")
    assert fleet.errors == []
    assert fleet.instances["a"].health.interval_s == 2


def test_relative_model_path_resolves_against_instance_dir(home: HomePaths) -> None:
    path = write_instance(home.home, "a", {"model": {"path": "m.gguf"}, "server": {"port": 8001}})
    (path.parent / "m.gguf").write_bytes(b"GGUF")
    config = load_fleet(home, which=lambda _: "x").instances["a"]
    assert config.model.path == str(path.parent / "m.gguf")


@pytest.mark.parametrize(
    "name",
    ["", "../x", "a/b", "a\\b", "CON", "con", "nul.txt", "com1", "x" * 300, "bad\nname", "nul\x00", "a.", "-a", "Ab",
     "ｆｕｌｌ"],
)
def test_hostile_names_rejected(name: str) -> None:
    assert check_instance_name(name) is not None


@pytest.mark.parametrize("name", ["a", "gpt-oss", "qwen2.5-coder", "m_1", "x" * 63])
def test_good_names_accepted(name: str) -> None:
    assert check_instance_name(name) is None


def test_windows_absolute_model_path_is_kept_on_any_platform(home: HomePaths) -> None:
    write_instance(home.home, "a", {"model": {"path": "D:/models/x.gguf"}, "server": {"port": 8001}})
    config = load_fleet(home, offline=True, which=lambda _: "x").instances["a"]
    assert config.model.path == "D:/models/x.gguf"


def test_further_aliases_route_here_and_are_checked(home: HomePaths, model_file: Path) -> None:
    a = minimal("a", 8001, model_file)
    a["model"] = {"path": str(model_file), "alias": "coder", "aliases": ["gpt-4o-mini", "coder", "a", "shared"]}
    b = minimal("b", 8002, model_file)
    b["model"] = {"path": str(model_file), "aliases": ["shared", "a"]}
    c = minimal("c", 8003, model_file)
    c["model"] = {"path": str(model_file), "aliases": ["x", " y", "x"]}
    for name, data in (("a", a), ("b", b), ("c", c)):
        write_instance(home.home, name, data)
    fleet = load_fleet(home, which=lambda _: "/usr/bin/llama-server")
    # its own names are not "further" names; the others route here too
    assert fleet.instances["a"].extra_aliases == ("gpt-4o-mini", "shared")
    errors = {(Path(p.file).parent.name, p.field): p.message for p in fleet.errors}
    assert set(errors) == {("b", "model.aliases"), ("c", "model.aliases")}
    assert "is the name of instance 'a'" in errors[("b", "model.aliases")]
    assert "' y' is empty or has spaces around it" in errors[("c", "model.aliases")]
    # a further alias shared by two instances makes them replicas, as a shared alias does
    warnings = {p.field: p.message for p in fleet.problems if p.severity == "warning"}
    assert "alias 'shared' is shared by a, b" in warnings["model.aliases"]


def threads_warning(home: HomePaths, model_file: Path, threads: dict[str, int | None],
                    backend: dict[str, str] | None = None, cores: int = 4, on_demand: tuple[str, ...] = (),
                    gateway: dict[str, object] | None = None) -> str | None:
    """The CPU-sharing warning of a fleet of `threads` (name -> model.threads), or None."""
    shutil.rmtree(home.instances_dir, ignore_errors=True)
    home.orchestrator_file.parent.mkdir(parents=True, exist_ok=True)
    home.orchestrator_file.write_text(json.dumps({"gateway": gateway or {}}))
    for i, (name, n) in enumerate(threads.items()):
        data = minimal(name, 8001 + i, model_file)
        data["model"] = {"path": str(model_file), "threads": n}
        data["gpu"] = {"backend": (backend or {}).get(name, "cpu")}
        if name in on_demand:
            data |= {"on_demand": True, "autostart": False}
        write_instance(home.home, name, data)
    fleet = load_fleet(home, which=lambda _: "/usr/bin/llama-server", cores=cores)
    assert fleet.errors == []
    found = [p for p in fleet.warnings if p.field == "model.threads"]
    assert len(found) <= 1
    return found[0].message if found else None


def test_cpu_instances_with_more_threads_than_cores_get_a_warning(home: HomePaths, model_file: Path) -> None:
    def warning(threads: dict[str, int | None], **kwargs) -> str | None:
        return threads_warning(home, model_file, threads, **kwargs)

    # unset threads mean one per core: two such servers already want twice the machine
    message = warning({"a": None, "b": None})
    assert message is not None
    assert "CPU instances a, b use 8 threads together (a 4, b 4, unset = one per core) on 4 cores" in message
    assert "set model.threads so they add up to at most 4 (e.g. 2 each)" in message
    assert warning({"a": 2, "b": 2}) is None
    assert warning({"a": 3, "b": 2}) is not None
    assert warning({"a": -1, "b": 1}) is not None  # -1: automatic, one per core
    assert warning({"a": None}) is None  # one instance has the machine to itself
    assert warning({"a": None, "b": None}, backend={"b": "vulkan"}) is None  # GPU instances are not counted


def test_more_cpu_instances_than_cores_are_told_to_run_fewer_at_once(home: HomePaths, model_file: Path) -> None:
    # 3 instances on 2 cores: no thread count makes them fit, so "1 each" would be false advice
    message = threads_warning(home, model_file, {"a": 1, "b": 1, "c": 1}, cores=2)
    assert message is not None
    assert "CPU instances a, b, c use 3 threads together (a 1, b 1, c 1, unset = one per core) on 2 cores" in message
    assert "3 instances at once are more than 2 cores even at 1 thread each: run at most 2 at once" in message
    assert "on_demand" in message and "gateway.max_loaded" in message
    assert "each)" not in message  # no "(e.g. N each)": no share adds up


def test_on_demand_cpu_instances_count_only_up_to_max_loaded(home: HomePaths, model_file: Path) -> None:
    threads = {"emb": 1, "gemma": 1, "od1": 1, "od2": 2, "od3": 1}
    on_demand = ("od1", "od2", "od3")
    # without a limit all five may run at once
    unlimited = threads_warning(home, model_file, threads, cores=2, on_demand=on_demand)
    assert unlimited is not None and "CPU instances emb, gemma, od1, od2, od3 use 6 threads" in unlimited
    assert "5 instances at once are more than 2 cores even at 1 thread each" in unlimited
    # max_loaded 1: emb, gemma and the on-demand one with the most threads (the worst case) fit 4 cores
    assert threads_warning(home, model_file, threads, cores=4, on_demand=on_demand, gateway={"max_loaded": 1}) is None
    over = threads_warning(home, model_file, threads, cores=3, on_demand=on_demand, gateway={"max_loaded": 1})
    assert over is not None
    assert ("CPU instances emb, gemma, od2 use 4 threads together (emb 1, gemma 1, od2 2, unset = one per core; "
            "gateway.max_loaded=1 runs at most 1 of the on-demand od1, od2, od3 at once) on 3 cores") in over
    assert "set model.threads so they add up to at most 3 (e.g. 1 each)" in over
    # a disabled gateway enforces no max_loaded: every on-demand one counts
    off = threads_warning(home, model_file, threads, cores=4, on_demand=on_demand,
                          gateway={"max_loaded": 1, "enabled": False})
    assert off is not None and "use 6 threads together" in off


def test_preload_is_for_on_demand_instances(home: HomePaths, model_file: Path) -> None:
    write_instance(home.home, "a", minimal("a", 8001, model_file) | {"preload": True})
    write_instance(home.home, "b", minimal("b", 8002, model_file) | {"preload": True, "on_demand": True})
    fleet = load_fleet(home, which=lambda _: "x")
    [problem] = fleet.errors
    assert Path(problem.file).parent.name == "a" and "preload is for on_demand instances" in problem.message
    assert "set on_demand: true" in problem.message
    b = fleet.instances["b"]
    assert b.starts_with_up and b.model_copy(update={"autostart": False}).starts_with_up  # as `create` writes it
    assert not b.model_copy(update={"preload": False}).starts_with_up


def test_a_built_in_template_name_that_would_meet_jinja_is_an_error_saying_how_to_fix_it(
    home: HomePaths, model_file: Path
) -> None:
    def instance(name: str, port: int, model: dict[str, object], args: list[str] | None = None) -> None:
        data = minimal(name, port, model_file)
        data["model"] = {"path": str(model_file), **model}
        write_instance(home.home, name, data | {"args": args or []})

    instance("named", 8001, {"chat_template": "gemma"})  # fine: rendered with --no-jinja
    instance("text", 8002, {"chat_template": "{{ messages[0].content }}", "jinja": True})
    instance("forced", 8003, {"chat_template": "gemma", "jinja": True})
    instance("raw", 8004, {}, ["--chat-template", "llama3"])
    instance("raw-ok", 8005, {}, ["--chat-template=llama3", "--no-jinja"])
    instance("raw-chatml", 8006, {}, ["--chat-template", "chatml"])
    instance("raw-forced", 8007, {"chat_template": "phi3"}, ["--jinja"])
    fleet = load_fleet(home, which=lambda _: "x")
    problems = {Path(p.file).parent.name: p.message for p in fleet.errors}
    assert sorted(problems) == ["forced", "raw", "raw-forced"]
    assert 'chat_template "gemma" is one of llama.cpp\'s built-in template names' in problems["forced"]
    assert "the name itself would become every chat prompt" in problems["forced"]
    assert "args pass --jinja" in problems["raw-forced"]
    assert 'every chat prompt would read "llama3"' in problems["raw"]
    assert 'Set model.chat_template to "llama3" instead (rendered with --no-jinja)' in problems["raw"]


def test_a_default_model_that_names_no_instance_or_alias_is_a_warning(home: HomePaths, model_file: Path) -> None:
    write_instance(home.home, "a", minimal("a", 8001, model_file) | {"model": {"path": str(model_file), "alias": "m"}})
    home.orchestrator_file.write_text(json.dumps({"gateway": {"default_model": "nope"}}), encoding="utf-8")
    fleet = load_fleet(home, which=lambda _: "x")
    [warning] = [p for p in fleet.problems if p.field.startswith("gateway")]
    assert (warning.field, warning.severity, Path(warning.file).name) == (
        "gateway.default_model", "warning", "orchestrator.json")
    assert "'nope' is no instance name or alias" in warning.message and "choose one of a, m" in warning.message
    for named in ("a", "m"):
        home.orchestrator_file.write_text(json.dumps({"gateway": {"default_model": named}}), encoding="utf-8")
        fleet = load_fleet(home, which=lambda _: "x")
        assert not [p for p in fleet.problems if p.field.startswith("gateway")] and not fleet.errors


def test_variants_need_names_of_their_own_and_shared_ones_make_replicas(home: HomePaths, model_file: Path) -> None:
    def instance(name: str, port: int, variants: dict[str, object], **model: object) -> None:
        write_instance(home.home, name, minimal(name, port, model_file)
                       | {"model": {"path": str(model_file), **model}, "variants": variants})

    instance("qwen", 8001, {"qwen-think": {"set_params": {"temperature": 0.6}}, "fast": {}}, alias="q")
    instance("twin", 8002, {"qwen-think": {"set_params": {"temperature": 0.6}}})
    instance("own", 8003, {"own-alias": {}}, alias="own-alias")
    instance("clash", 8004, {"qwen": {}})
    instance("routing", 8005, {"x": {"strip_params": ["model"]}})
    instance("blank", 8006, {" x": {}})
    fleet = load_fleet(home, which=lambda _: "x")
    errors = {Path(p.file).parent.name: p for p in fleet.errors}
    assert sorted(errors) == ["blank", "clash", "own", "routing"]
    assert "variant 'own-alias' is already a name of this instance" in errors["own"].message
    assert errors["clash"].field == "variants"
    assert "variant 'qwen' is the name of instance 'qwen'" in errors["clash"].message
    assert "the gateway routes requests by it" in errors["routing"].message
    assert "variant name ' x' is empty or has spaces around it" in errors["blank"].message
    [shared] = [p for p in fleet.warnings if "shared by" in p.message]
    assert shared.field == "variants" and "alias 'qwen-think' is shared by qwen, twin" in shared.message
    assert fleet.instances["qwen"].extra_aliases == ("qwen-think", "fast")


def test_a_bad_instance_name_hides_none_of_the_files_other_problems(home: HomePaths, model_file: Path) -> None:
    gone = model_file.parent / "gone.gguf"
    write_instance(home.home, "My Model", {"model": {"path": str(gone), "context_size": "big"},
                                           "server": {"port": 8001}})
    write_instance(home.home, "named", minimal("other", 99999, gone))
    write_instance(home.home, "ok", minimal("ok", 8001, model_file))
    fleet = load_fleet(home, which=lambda _: "x")
    errors = {(Path(p.file).parent.name, p.field): p.message for p in fleet.errors}
    assert set(errors) == {("My Model", ""), ("My Model", "model.context_size"), ("My Model", "model.path"),
                           ("My Model", "server.port"), ("named", "name"), ("named", "server.port"),
                           ("named", "model.path")}
    assert "rename the directory to 'my-model'" in errors[("My Model", "")]
    assert errors[("My Model", "server.port")] == "port 8001 is also used by ok; every instance needs its own port"
    assert errors[("named", "name")].startswith("name 'other' must match its directory 'named': set it to 'named'")
    # the clash is settled in the broken config: the valid one is warned, and may still start
    assert ("ok", "server.port") in fields(fleet, "warning")
    assert fleet.instances.keys() == {"ok"}
    require_valid(fleet, ["ok"])


def test_every_request_filter_problem_is_reported_in_one_run(home: HomePaths, model_file: Path) -> None:
    write_instance(home.home, "a", minimal("a", 8001, model_file) | {
        "request_filters": {"strip_params": ["model", "stream"], "set_params": {"stream": True}},
        "variants": {"think": {"strip_params": ["model"]}, " fast": {"set_params": {"model": "x"}}, "a": {}},
    })
    errors = {p.field: p.message for p in load_fleet(home, which=lambda _: "x").errors}
    routing = "cannot be filtered: the gateway routes requests by"
    assert errors == {
        "request_filters.strip_params": f"'model', 'stream' {routing} them; remove them",
        "request_filters.set_params": f"'stream' {routing} it; remove it",
        "variants.think.strip_params": f"'model' {routing} it; remove it",
        "variants. fast": "variant name ' fast' is empty or has spaces around it",
        "variants. fast.set_params": f"'model' {routing} it; remove it",
        "variants": "variant 'a' is already a name of this instance (its name, model.alias or model.aliases), "
                    "which routes here without the variant's filters: give the variant a name of its own",
    }


def test_rules_across_fields_are_judged_beside_invalid_fields_but_never_on_them(
    home: HomePaths, model_file: Path
) -> None:
    write_instance(home.home, "a", minimal("a", 8001, model_file) | {
        "server": {"port": "eighty"}, "preload": True, "idle_ttl_s": 60,
        "restart": {"backoff_initial_s": 10, "backoff_max_s": 1, "max_start_failures": 0},
        "model": {"path": str(model_file), "chat_template": "gemma", "jinja": True, "context_size": -5},
    })
    # a rule reading an invalid field is not judged on what stands in for it
    write_instance(home.home, "b", minimal("b", 8002, model_file) | {
        "on_demand": "maybe", "preload": True, "restart": {"backoff_initial_s": "x", "backoff_max_s": 1},
    })
    fleet = load_fleet(home, which=lambda _: "x")
    assert fields(fleet) == {
        ("a", "server.port"), ("a", "model.context_size"), ("a", "restart.max_start_failures"), ("a", "preload"),
        ("a", "idle_ttl_s"), ("a", "restart.backoff_max_s"), ("a", "model.chat_template"),
        ("b", "on_demand"), ("b", "restart.backoff_initial_s"),
    }


def test_an_unset_variable_hides_none_of_the_files_other_problems(home: HomePaths) -> None:
    write_instance(home.home, "a", {"model": {"path": "${env:MODELS}/m.gguf"}, "server": {"port": "${env:PORT}"},
                                    "args": ["--port", "1", "--host", "0.0.0.0"], "gpu": {"layers": "lots"}})
    fleet = load_fleet(home, environ={}, which=lambda _: "x")
    errors = {p.field: p.message for p in fleet.errors}
    assert set(errors) == {"model.path", "server.port", "args", "gpu.layers"}  # one each: nothing judged twice
    assert "MODELS is not set" in errors["model.path"] and "PORT is not set" in errors["server.port"]
    assert "--port is set by the orchestrator" in errors["args"] and "--host is set by" in errors["args"]


def test_a_broken_orchestrator_json_hides_none_of_its_problems_and_distorts_none_of_the_instances(
    home: HomePaths, model_file: Path
) -> None:
    home.home.mkdir(parents=True)
    home.orchestrator_file.write_text(json.dumps({
        "gateway": {"port": "x", "tls_cert_file": "/etc/gw/cert.pem"},
        "builds": {"vk": sys.executable},  # a file that runs: the build is fine
        "defaults": {"gpu": {"backend": "vulkan"}, "restrat": {}},
    }))
    write_instance(home.home, "a", minimal("a", 8001, model_file) | {"build": "vk", "gpu": {"devices": [0]}})
    fleet = load_fleet(home, which=lambda _: None)
    # judged with the builds and defaults orchestrator.json gives: no unknown build, no devices on the CPU
    assert fields(fleet) == {("home", "gateway.port"), ("home", "gateway"), ("home", "defaults.restrat"),
                             ("a", "restrat")}
    assert fleet.orchestrator.gateway.port == 8000  # what the other commands use stays as it was
    # unreadable, it says nothing about ports: none is taken for the gateway's
    home.orchestrator_file.write_text('{"gateway": ')
    write_instance(home.home, "a", minimal("a", 8000, model_file))
    assert fields(load_fleet(home, which=lambda _: "x")) == {("home", "")}


def test_a_chat_template_neither_built_in_nor_jinja_text_is_an_error_naming_the_closest(
    home: HomePaths, model_file: Path
) -> None:
    for port, (name, template) in enumerate([("typo", "gema"), ("named", "gemma"), ("text", "{% for m in messages %}"),
                                             ("vars", "{{ messages }}"), ("odd", "qwxz")], 8001):
        write_instance(home.home, name, minimal(name, port, model_file) | {
            "model": {"path": str(model_file), "chat_template": template}})
    fleet = load_fleet(home, which=lambda _: "x")
    problems = {Path(p.file).parent.name: p for p in fleet.errors}
    assert sorted(problems) == ["odd", "typo"]
    assert problems["typo"].field == "model.chat_template"
    assert "'gema' is neither one of llama.cpp's built-in template names nor Jinja template text" in \
        problems["typo"].message
    assert "did you mean 'gemma'?" in problems["typo"].message and "gemma, gigachat" in problems["typo"].message
    assert "did you mean" not in problems["odd"].message and "Built-in names: bailing" in problems["odd"].message


@pytest.mark.parametrize("slots", [0, -2])
def test_parallel_is_one_slot_or_more_or_automatic(home: HomePaths, model_file: Path, slots: int) -> None:
    for port, (name, value) in enumerate([("bad", slots), ("auto", -1), ("one", 1)], 8001):
        write_instance(home.home, name, minimal(name, port, model_file) | {
            "model": {"path": str(model_file), "parallel": value}})
    fleet = load_fleet(home, which=lambda _: "x")
    assert fields(fleet) == {("bad", "model.parallel")}
    assert "give 1 or more, or -1 to let it choose" in fleet.errors[0].message


def test_args_may_not_repeat_a_flag_a_set_field_renders(home: HomePaths, model_file: Path) -> None:
    def instance(name: str, port: int, model: dict[str, object], args: list[str], **more: object) -> None:
        write_instance(home.home, name, minimal(name, port, model_file) | {
            "model": {"path": str(model_file), **model}, "args": args, **more})

    instance("ctx", 8001, {"context_size": 512}, ["-c", "1024"])
    instance("ctx-long", 8002, {"context_size": 512}, ["--ctx-size=1024"])
    instance("threads", 8003, {"threads": 2}, ["--threads", "3", "-np", "2"])
    instance("ngl", 8004, {}, ["--n-gpu-layers", "9"], gpu={"layers": 99})
    instance("several", 8005, {"parallel": 2, "embeddings": True, "jinja": True},
             ["-np", "4", "--embedding", "--no-jinja"])
    instance("unset", 8006, {}, ["-c", "1024", "-t", "3", "-ngl", "9", "--embeddings", "--jinja", "-dev", "none"])
    instance("cpu-devices", 8007, {}, ["--device", "none"], gpu={"devices": [0], "backend": "cpu"})
    fleet = load_fleet(home, which=lambda _: "x")
    args = {Path(p.file).parent.name: p.message for p in fleet.errors if p.field == "args"}
    assert sorted(args) == ["ctx", "ctx-long", "ngl", "several", "threads"]
    assert args["ctx"] == ("-c is set by the orchestrator from model.context_size: remove it from args, and set "
                           "model.context_size instead (llama-server would run with the last one)")
    assert "--ctx-size is set by the orchestrator from model.context_size" in args["ctx-long"]
    assert "--threads is set by" in args["threads"] and "-np" not in args["threads"]  # parallel is not set
    assert "--n-gpu-layers is set by the orchestrator from gpu.layers" in args["ngl"]
    for flag, field in (("-np", "model.parallel"), ("--embedding", "model.embeddings"), ("--no-jinja", "model.jinja")):
        assert f"{flag} is set by the orchestrator from {field}" in args["several"]


def test_a_server_on_every_interface_without_a_key_is_a_warning_naming_the_fix(
    home: HomePaths, model_file: Path
) -> None:
    open_to_all = {**minimal("a", 8001, model_file), "server": {"port": 8001, "host": "0.0.0.0"}}
    write_instance(home.home, "a", open_to_all)
    keyed = {**minimal("b", 8002, model_file), "server": {"port": 8002, "host": "0.0.0.0", "api_key_file": "/k"}}
    write_instance(home.home, "b", keyed)
    write_instance(home.home, "c", {**minimal("c", 8003, model_file), "server": {"port": 8003, "host": "::1"}})
    fleet = load_fleet(home, which=lambda _: "x")
    assert fleet.errors == []
    warned = {Path(p.file).parent.name: p.message for p in fleet.problems if p.field == "server.host"}
    assert warned.keys() == {"a"}
    assert "'0.0.0.0'" in warned["a"] and "set server.api_key_env or server.api_key_file" in warned["a"]
    assert "keep host 127.0.0.1" in warned["a"]


def test_gpu_layers_on_the_cpu_backend_are_a_warning(home: HomePaths, model_file: Path) -> None:
    write_instance(home.home, "a", {**minimal("a", 8001, model_file), "gpu": {"layers": 99}})
    write_instance(home.home, "b", {**minimal("b", 8002, model_file), "gpu": {"layers": 0}})
    write_instance(home.home, "c", {**minimal("c", 8003, model_file), "gpu": {"backend": "vulkan", "layers": 99}})
    fleet = load_fleet(home, which=lambda _: "x")
    assert fleet.errors == []
    warned = {Path(p.file).parent.name: p.message for p in fleet.problems if p.field == "gpu.layers"}
    assert warned.keys() == {"a"}
    assert "ignores gpu.layers 99" in warned["a"] and "set gpu.backend" in warned["a"]
