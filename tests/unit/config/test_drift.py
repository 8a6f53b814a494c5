"""What `ps` marks as changed: a new command line, and settings `up` applies without a restart."""

from __future__ import annotations

from llama_orchestrator.config.argv import LaunchCommand, build_command
from llama_orchestrator.config.drift import ConfigDrift, RunningCommand, settings_change
from llama_orchestrator.config.models import InstanceConfig


def config(**overrides: object) -> InstanceConfig:
    data: dict[str, object] = {"name": "a", "model": {"path": "/m/x.gguf"}, "server": {"port": 8001}}
    data.update(overrides)
    return InstanceConfig.model_validate(data)


def render(c: InstanceConfig) -> LaunchCommand:
    return build_command(c, c.binary or "/b/llama-server", {})


def running(c: InstanceConfig) -> ConfigDrift:
    drift = ConfigDrift(render)
    drift.running = RunningCommand.spawned(render(c), "token")
    return drift


def test_request_filters_and_variants_are_changes_up_applies_without_a_restart() -> None:
    applied = config(request_filters={"set_params": {"temperature": 0.6}})
    on_disk = config(request_filters={"set_params": {"temperature": 0.2}},
                     variants={"a-cold": {"set_params": {"temperature": 0.1}}})
    assert settings_change(applied, on_disk, render) == ["request_filters.set_params", "variants"]
    assert running(applied).describe(applied, on_disk) == (
        "settings request_filters.set_params, variants; no restart needed")


def test_every_setting_the_daemon_reads_live_is_named_by_its_field() -> None:
    applied = config()
    on_disk = config(model={"path": "/m/x.gguf", "aliases": ["gpt-4o-mini"]}, health={"interval_s": 5},
                     restart={"stop_grace_s": 7}, on_demand=True, idle_ttl_s=60, unlisted=True)
    assert settings_change(applied, on_disk, render) == [
        "model.aliases", "health.interval_s", "restart.stop_grace_s", "on_demand", "idle_ttl_s", "unlisted"]


def test_a_change_of_the_command_line_is_said_once_as_the_command_and_with_the_settings_after_it() -> None:
    applied = config(args=["-c", "512"])
    on_disk = config(args=["-c", "1024"], model={"path": "/m/x.gguf", "alias": "gpt"}, binary="/b2/llama-server",
                     variants={"a-cold": {}})
    assert settings_change(applied, on_disk, render) == ["variants"]  # alias, binary, args: the command's
    assert running(applied).describe(applied, on_disk) == (
        "binary /b/llama-server → /b2/llama-server; --alias a → --alias gpt; -c 512 → -c 1024; settings variants")
    assert running(applied).describe(applied, config(args=["-c", "1024"])) == "-c 512 → -c 1024"


def test_nothing_is_marked_when_the_file_holds_what_runs() -> None:
    applied = config(variants={"a-cold": {}})
    same = config(variants={"a-cold": {}}, autostart=True)  # a default written out is no change
    assert running(applied).describe(applied, same) is None
    assert running(applied).describe(applied, None) is None  # an invalid file: nothing to compare
    schema = config(**{"$schema": "https://example.invalid/instance.json", "variants": {"a-cold": {}}})
    assert running(applied).describe(applied, schema) is None


def test_the_settings_compared_follow_the_configs_asked_about() -> None:
    applied = config()
    drift = running(applied)
    assert drift.describe(applied, config(unlisted=True)) == "settings unlisted; no restart needed"
    assert drift.describe(applied, config(pinned=True)) == "settings pinned; no restart needed"
    assert drift.describe(applied, config()) is None


def test_an_adopted_process_is_compared_with_the_command_recorded_at_its_spawn_not_the_os_argv() -> None:
    """A wrapper script (`binary`) that execs llama-server: the OS then shows the real server's argv."""
    applied = config(binary="/w/wrapper", env={"A": "1"}, server={"port": 8001, "api_key_env": "K"})
    command = build_command(applied, "/w/wrapper", {"K": "s3cret"})
    recorded = RunningCommand.spawned(command, "token-1").dumps()
    assert "s3cret" not in recorded  # the key is in the environment: only a digest reaches state.db
    os_argv = ["/b/llama-server", *command.argv[1:]]

    def adopted(record: str | None, environ: dict[str, str]) -> ConfigDrift:
        drift = ConfigDrift(lambda c: build_command(c, c.binary or "/b/llama-server", environ))
        drift.adopt(record, "token-1", lambda: os_argv)
        return drift

    assert adopted(recorded, {"K": "s3cret"}).describe(applied, applied) is None
    assert adopted(recorded, {"K": "other"}).describe(applied, applied) == "environment LLAMA_API_KEY"
    moved = config(binary="/w/other", env={"A": "2"}, server={"port": 8001, "api_key_env": "K"})
    assert adopted(recorded, {"K": "s3cret"}).describe(applied, moved) == "binary /w/wrapper → /w/other; environment A"
    # a row from before commands were recorded (or a damaged one): the OS's argv, environment unknown
    for old in (None, "", "not json", '{"argv": []}'):
        assert adopted(old, {"K": "s3cret"}).describe(applied, applied) == "binary /b/llama-server → /w/wrapper", old
