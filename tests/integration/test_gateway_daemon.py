"""The gateway inside a real daemon, driven as a new user would: the official OpenAI SDK against
`llama-orch --home H daemon start`, with real llama-servers (tiny model) behind it.

Instances: `tiny` (started with the daemon), `lazy` (on demand, idle TTL 2 s) and `rep-a`/`rep-b`
(two replicas sharing the alias `pair`). Inference keys come from the environment variable named
by `gateway.api_keys_env`, which the daemon inherits from the `llama-orch daemon start` command.
`Home.close()` stops the daemon (and with it every llama-server) and SIGKILLs it by pid if it
does not go; the leak guard checks that nothing of this run survives.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ollama
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from tests.support.orch import FAST_HEALTH, FAST_RESTART, Home, wait_gone
from tests.support.ports import free_port
from tests.support.tiny_model import N_CTX
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.real_server]

KEY = "e2e-gateway-key"
KEYS_ENV = "LLAMA_ORCH_E2E_GATEWAY_KEYS"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


class Fleet:
    def __init__(self, home: Home, gateway: str) -> None:
        self.home = home
        self.gateway = gateway

    def client(self, key: str = KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway + "/v1", api_key=key, max_retries=0, timeout=60)

    def ps(self, *flags: str) -> dict[str, Any]:
        return json.loads(self.home.ok("ps", "--json", *flags).out)  # type: ignore[no-any-return]

    def state(self, name: str) -> str:
        return str(next(i["state"] for i in self.ps("--all")["instances"] if i["name"] == name))

    def native(self, name: str, route: str) -> Any:
        return self.call(f"/instances/{name}/{route}")

    def call(self, path: str, body: dict[str, object] | None = None) -> Any:
        """GET `path` at the gateway with the key (POST `body` as JSON if given); the JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.gateway}{path}", data, {"Authorization": f"Bearer {KEY}",
                                                                        "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())


def write_instance(home: Home, name: str, binary: Path, model: Path, alias: str | None = None,
                   **extra: Any) -> None:
    config = {
        "name": name,
        "binary": str(binary),
        "model": {"path": str(model), "alias": alias, "context_size": 8192, "parallel": 2, "threads": 1},
        "server": {"port": free_port()},
        "health": FAST_HEALTH,
        "restart": FAST_RESTART,
        **extra,
    }
    path = home.paths.instance_config(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))


@pytest.fixture
def fleet(tmp_path: Path, llama_server_bin: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    home = Home(tmp_path / "home", tmp_path / "scratch")
    port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": port, "api_keys_env": KEYS_ENV}}))
    write_instance(home, "tiny", llama_server_bin, tiny_model)
    write_instance(home, "lazy", llama_server_bin, tiny_model, on_demand=True, idle_ttl_s=2)
    write_instance(home, "rep-a", llama_server_bin, tiny_model, alias="pair")
    write_instance(home, "rep-b", llama_server_bin, tiny_model, alias="pair")
    monkeypatch.setenv(KEYS_ENV, KEY)  # the daemon inherits it from `daemon start`
    try:
        home.start_daemon(autostart=True)
        for name in ("tiny", "rep-a", "rep-b"):
            home.wait_state(name, "ready", timeout_s=60)
        fleet = Fleet(home, f"http://127.0.0.1:{port}")
        assert fleet.ps()["gateway"] == fleet.gateway
        yield fleet
    finally:
        home.close()


def test_models_chat_on_demand_start_and_idle_stop_keys_and_unknown_model(fleet: Fleet, tiny_model: Path) -> None:
    with fleet.client() as c:
        models = {m.id: m.to_dict() for m in c.models.list().data}
        assert set(models) == {"tiny", "lazy", "rep-a", "rep-b", "pair"}
        assert {m["created"] for m in models.values()} == {int(tiny_model.stat().st_mtime)}  # the file's time
        assert {k: m["state"] for k, m in models.items()} == {
            "tiny": "ready", "lazy": "stopped", "rep-a": "ready", "rep-b": "ready", "pair": "ready"}
        assert models["pair"]["instances"] == ["rep-a", "rep-b"]

        chat = c.chat.completions.create(model="tiny", messages=HELLO, max_tokens=8)
        assert chat.choices[0].message.content is not None

        with pytest.raises(openai.NotFoundError) as unknown:
            c.chat.completions.create(model="nope", messages=HELLO, max_tokens=4)
        assert "Available models: lazy, pair, rep-a, rep-b, tiny" in str(unknown.value)

        # on demand: the first request starts it and waits for it (start_wait "hold")
        chat = c.chat.completions.create(model="lazy", messages=HELLO, max_tokens=8)
        assert chat.choices[0].message.content is not None
        assert fleet.state("lazy") == "ready"
        assert {i["name"] for i in fleet.ps()["instances"]} >= {"lazy"}
        # ...and its idle TTL (2 s) stops it again
        wait_until(lambda: fleet.state("lazy") == "stopped", 30, 0.1, "lazy stopped after its idle TTL")
        assert {m.id: m.to_dict()["state"] for m in c.models.list().data}["lazy"] == "stopped"

    with fleet.client("wrong-key") as bad:
        with pytest.raises(openai.AuthenticationError) as denied:
            bad.chat.completions.create(model="tiny", messages=HELLO, max_tokens=4)
        assert denied.value.status_code == 401
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()


def test_an_instance_created_while_the_daemon_runs_is_known_at_once(
    fleet: Fleet, tiny_model: Path, llama_server_bin: Path,
) -> None:
    """A config written (by `create` or by hand) then used, as after `docker create`: no `up` in
    between. `ps`, `inspect`, the gateway (listing it, and starting it on demand at its first
    request) and `rm` all find it."""
    write_instance(fleet.home, "late", llama_server_bin, tiny_model, on_demand=True)
    assert fleet.state("late") in ("reconciling", "stopped")  # `ps --all` lists it at once
    wait_until(lambda: fleet.state("late") == "stopped", 10, 0.05, "late found stopped")
    assert json.loads(fleet.home.ok("inspect", "late", "--json").out)["status"]["state"] == "stopped"
    with fleet.client() as c:
        assert "late" in {m.id for m in c.models.list().data}
        chat = c.chat.completions.create(model="late", messages=HELLO, max_tokens=4)
        assert chat.choices[0].message.content is not None
    assert fleet.state("late") == "ready"
    (pid,) = [i["pid"] for i in fleet.ps()["instances"] if i["name"] == "late"]

    fleet.home.ok("create", "later", "--model", str(tiny_model), "--threads", "1", "--", "-c", "512")
    fleet.home.ok("rm", "later", "-y")  # never loaded by the daemon: nothing to stop, nothing left
    assert not fleet.home.paths.instance_dir("later").exists()
    fleet.home.ok("rm", "late", "-y")  # stopped first, then forgotten
    wait_gone(pid, 30)
    assert "late" not in {i["name"] for i in fleet.ps("--all")["instances"]}

    # a config deleted by hand: a stopped instance goes with it, never to be started by a request
    write_instance(fleet.home, "hand", llama_server_bin, tiny_model, on_demand=True)
    wait_until(lambda: fleet.state("hand") == "stopped", 10, 0.05, "hand found stopped")
    shutil.rmtree(fleet.home.paths.instance_dir("hand"))
    assert "hand" not in {i["name"] for i in fleet.ps("--all")["instances"]}
    with fleet.client() as c:
        assert "hand" not in {m.id for m in c.models.list().data}
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.create(model="hand", messages=HELLO, max_tokens=4)

    # a stopped instance's config edited by hand: the start a request makes runs what the file says
    # now (here a new alias and port), not what the daemon read before
    write_instance(fleet.home, "edited", llama_server_bin, tiny_model, on_demand=True)
    wait_until(lambda: fleet.state("edited") == "stopped", 10, 0.05, "edited found stopped")
    write_instance(fleet.home, "edited", llama_server_bin, tiny_model, alias="edited-now", on_demand=True)
    port = json.loads(fleet.home.paths.instance_config("edited").read_text())["server"]["port"]
    with fleet.client() as c:
        chat = c.chat.completions.create(model="edited-now", messages=HELLO, max_tokens=4)
        assert chat.choices[0].message.content is not None
    argv = json.loads(fleet.home.ok("inspect", "edited", "--json").out)["argv"]
    assert argv[argv.index("--port") + 1] == str(port), argv


def test_a_client_disconnecting_mid_stream_frees_the_slot(fleet: Fleet) -> None:
    def busy() -> bool:
        return any(s["is_processing"] for s in fleet.native("tiny", "slots"))

    with fleet.client() as c:
        stream = c.chat.completions.create(
            model="tiny", messages=HELLO, max_tokens=6000, stream=True,
            extra_body={"ignore_eos": True})
        for seen, _chunk in enumerate(stream, start=1):
            if seen == 3:
                break
        assert busy(), "the stream should still be generating"
        stream.close()
        wait_until(lambda: not busy(), 10, 0.02, "llama-server slot idle after the client went away")
        # the instance serves the next request normally
        chat = c.chat.completions.create(model="tiny", messages=HELLO, max_tokens=4)
        assert chat.choices[0].message.content is not None


def test_requests_keep_succeeding_while_a_replica_is_killed_and_reloads(fleet: Fleet) -> None:
    home = fleet.home
    victim = home.status("rep-a").pid
    assert victim is not None
    served: list[str] = []
    with fleet.client() as c:
        def ask() -> None:
            raw = c.chat.completions.with_raw_response.create(
                model="pair", messages=HELLO, max_tokens=4)
            assert raw.parse().choices[0].message.content is not None
            served.append(raw.headers["X-Llama-Orch-Instance"])

        for _ in range(4):
            ask()
        assert set(served) == {"rep-a", "rep-b"}  # least in flight, then least recently used

        os.kill(victim, signal.SIGKILL)  # no warning: the daemon has not probed it yet
        wait_gone(victim, 10)
        served.clear()
        for _ in range(4):  # before, while and after the daemon notices: never an error
            ask()
        # ... and while rep-a restarts and loads again
        def back() -> bool:
            ask()
            status = home.status("rep-a")
            return status.state == "ready" and status.pid not in (None, victim)

        wait_until(back, 60, 0.02, "rep-a restarted and ready, every request served meanwhile")
        assert "rep-b" in served
        served.clear()
        for _ in range(6):
            ask()
        assert set(served) == {"rep-a", "rep-b"}, served


def sse_data(stream: Any) -> Iterator[dict[str, Any]]:
    """Each `data:` event of a server-sent event stream, parsed (comments skipped)."""
    for line in stream:
        if line.startswith(b"data: "):
            yield json.loads(line[len(b"data: "):])


def router_status(fleet: Fleet, model: str) -> str:
    return str(next(m["status"]["value"] for m in fleet.call("/models")["data"] if m["id"] == model))


def test_llama_server_router_clients_load_and_unload_models_through_the_gateway(fleet: Fleet) -> None:
    """What router-mode clients do: read `status.value` from /models, POST /models/load and
    /models/unload, and poll until the status says it is done."""
    assert {m["id"]: m["status"]["value"] for m in fleet.call("/models")["data"]} == {
        "tiny": "loaded", "lazy": "unloaded", "rep-a": "loaded", "rep-b": "loaded", "pair": "loaded"}
    assert fleet.call("/props")["role"] == "router"  # how router clients tell a router from one model
    def shape(props: dict[str, Any]) -> tuple[object, ...]:
        return props["model_alias"], props["total_slots"], props["default_generation_settings"]["n_ctx"]

    assert shape(fleet.call("/props?model=tiny")) == shape(fleet.native("tiny", "props")) == ("tiny", 2, 4096)
    assert [slot["id"] for slot in fleet.call("/slots?model=pair")] == [0, 1]  # a replica's own slots
    assert fleet.native("tiny", "lora-adapters") == []  # any route of an instance's own, not a fixed list
    assert [m["id"] for m in fleet.native("tiny", "v1/models")["data"]] == ["tiny"]
    with pytest.raises(urllib.error.HTTPError) as not_loaded:
        fleet.call("/props?model=lazy&autoload=false")
    assert not_loaded.value.code == 400 and fleet.state("lazy") == "stopped"

    stream = urllib.request.Request(f"{fleet.gateway}/models/sse", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(stream, timeout=30) as events:  # the timeout bounds every read below
        statuses = sse_data(events)
        assert {e["model"]: e["data"]["status"] for e in itertools.islice(statuses, 5)} == {
            "tiny": "loaded", "lazy": "unloaded", "rep-a": "loaded", "rep-b": "loaded", "pair": "loaded"}
        assert fleet.call("/models/unload", {"model": "tiny"}) == {"success": True}
        assert next(statuses) == {"model": "tiny", "event": "model_status", "data": {"status": "unloaded"}}
    assert fleet.state("tiny") == "stopped"
    assert fleet.call("/models/load", {"model": "tiny"}) == {"success": True}
    wait_until(lambda: router_status(fleet, "tiny") == "loaded", 60, 0.1, "tiny loaded again")
    assert fleet.state("tiny") == "ready"
    with fleet.client() as c:
        assert c.chat.completions.create(model="tiny", messages=HELLO, max_tokens=4).choices

    assert fleet.call("/models/load", {"model": "lazy"}) == {"success": True}  # an on-demand one
    wait_until(lambda: router_status(fleet, "lazy") == "loaded", 60, 0.1, "lazy loaded")

    assert fleet.call("/models/unload", {"model": "pair"}) == {"success": True}  # an alias: both replicas
    wait_until(lambda: router_status(fleet, "pair") == "unloaded", 30, 0.1, "both replicas of pair unloaded")
    assert (fleet.state("rep-a"), fleet.state("rep-b")) == ("stopped", "stopped")

    with pytest.raises(urllib.error.HTTPError) as unknown:
        fleet.call("/models/load", {"model": "nope"})
    assert unknown.value.code == 404 and "Available models: lazy, pair" in unknown.value.read().decode()


def test_an_ollama_client_starts_an_on_demand_model_and_unloads_it(fleet: Fleet, tiny_model: Path) -> None:
    """Ollama's own client against the daemon's gateway: the list gives each model's file size and
    time; its chat starts `lazy` (held while it loads, through the gateway's own route), `ps` lists
    it, and `keep_alive=0` stops it."""
    client = ollama.Client(host=fleet.gateway, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    listed = {m.model: m for m in client.list().models}
    stat = tiny_model.stat()
    assert {name: m.size for name, m in listed.items()} == dict.fromkeys(
        ("lazy", "pair", "rep-a", "rep-b", "tiny"), stat.st_size)
    assert listed["pair"].modified_at is not None and listed["pair"].modified_at.timestamp() == pytest.approx(
        stat.st_mtime, abs=1e-3)
    details = listed["tiny"].details
    assert details is not None and (details.family, details.families, details.quantization_level) == (
        "llama", ["llama"], "F32")  # from the model file's GGUF metadata
    asleep, awake = client.show("lazy").modelinfo, client.show("tiny").modelinfo
    assert asleep is not None and asleep["general.architecture"] == "llama"
    assert asleep["llama.context_length"] == N_CTX  # down: what the model was trained for
    assert awake is not None and awake["llama.context_length"] == 8192 // 2  # up: a slot's share of context_size
    assert fleet.state("lazy") == "stopped"
    answer = client.chat("lazy", messages=[{"role": "user", "content": "hello"}], options={"num_predict": 4})
    assert answer.done and answer.eval_count == 4 and fleet.state("lazy") == "ready"
    assert "lazy" in {m.model for m in client.ps().models}
    assert client.generate("lazy", keep_alive=0).done_reason == "unload"
    wait_until(lambda: fleet.state("lazy") == "stopped", 30, 0.1, "lazy unloaded")
    assert "lazy" not in {m.model for m in client.ps().models}
    with pytest.raises(ollama.ResponseError) as denied:
        ollama.Client(host=fleet.gateway).list()
    assert denied.value.status_code == 401


def test_two_on_demand_models_with_room_for_one_take_turns(
    tmp_path: Path, llama_server_bin: Path, tiny_model: Path
) -> None:
    """max_loaded=1 and two on-demand real llama-servers: while `first` streams to an OpenAI SDK
    client, a request for `second` is held (not refused); once the stream ends, `first` is
    evicted and `second` starts only after `first` has exited, then answers."""
    home = Home(tmp_path / "home", tmp_path / "scratch")
    port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {
        "port": port, "max_loaded": 1, "start_wait_timeout_s": 60, "hold_keepalive_s": 0.2}}))
    for name in ("first", "second"):
        write_instance(home, name, llama_server_bin, tiny_model, on_demand=True)
    try:
        home.start_daemon(autostart=True)
        fleet = Fleet(home, f"http://127.0.0.1:{port}")
        with fleet.client() as c:
            stream = c.chat.completions.create(model="first", messages=HELLO, max_tokens=3000, stream=True,
                                               extra_body={"ignore_eos": True})  # long; unread, it stays in flight
            first_chunks = [next(iter(stream))]
            body = {"model": "second", "messages": HELLO, "max_tokens": 4, "stream": True}
            held = urllib.request.Request(f"{fleet.gateway}/v1/chat/completions", json.dumps(body).encode(),
                                          {"Content-Type": "application/json"})
            with urllib.request.urlopen(held, timeout=60) as second:
                assert second.status == 200 and second.readline().startswith(b": waiting for room to load 'second'")
                assert fleet.state("first") == "ready" and fleet.state("second") == "stopped"
                first_chunks.extend(stream)  # the rest of the stream, whole
                rest = second.read().decode()
        assert first_chunks[-1].choices[0].finish_reason == "length" and len(first_chunks) > 1000  # whole
        # an answer to its end (its few tokens of the random tiny model may all be held-back UTF-8 bytes,
        # so no "content" need appear), and no error event
        assert rest.rstrip().endswith("data: [DONE]") and '"finish_reason":"' in rest, rest[-300:]
        assert "error" not in rest, rest[-300:]
        first_gone = next(e for e in home.events("first") if (e.from_state, e.to_state) == ("stopping", "stopped"))
        second_start = next(e for e in home.events("second") if e.to_state == "starting")
        assert "evicted to start second" in next(e.reason for e in home.events("first") if e.to_state == "stopping")
        assert second_start.id > first_gone.id
    finally:
        home.close()


def test_a_group_limit_evicts_the_groups_own_member_and_leaves_the_rest_loaded(
    tmp_path: Path, llama_server_bin: Path, tiny_model: Path
) -> None:
    """group_limits {"big": 1}: two on-demand `big` models take turns while an on-demand model
    outside the group stays loaded, though it was used longer ago."""
    home = Home(tmp_path / "home", tmp_path / "scratch")
    port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": port, "group_limits": {"big": 1}}}))
    for name, group in (("big-a", "big"), ("big-b", "big"), ("embed", None)):
        write_instance(home, name, llama_server_bin, tiny_model, on_demand=True, group=group)
    try:
        home.start_daemon(autostart=True)
        fleet = Fleet(home, f"http://127.0.0.1:{port}")
        with fleet.client() as c:
            for model in ("embed", "big-a", "big-b"):
                answer = c.chat.completions.create(model=model, messages=HELLO, max_tokens=2)
                assert answer.choices[0].message.content is not None
        assert {n: fleet.state(n) for n in ("big-a", "big-b", "embed")} == {
            "big-a": "stopped", "big-b": "ready", "embed": "ready"}
        stopping = next(e for e in home.events("big-a") if e.to_state == "stopping")
        assert stopping.reason == "evicted to start big-b (group_limits.big=1)", stopping
        assert not any(e.to_state == "stopping" for e in home.events("embed"))
    finally:
        home.close()


def test_a_ram_budget_evicts_by_estimate_first_and_by_the_measured_size_once_each_model_has_run(
    tmp_path: Path, llama_server_bin: Path, tiny_model: Path
) -> None:
    """ram_budget_gib with room for one estimate and a little more: `b`'s first start evicts `a`
    (a's measured size + b's estimate is over); once both have run, their measured sizes (a real
    llama-server with the tiny model holds far less than the estimate's overhead) fit together."""
    from llama_orchestrator import gguf_file
    from llama_orchestrator.config import footprint
    from llama_orchestrator.config.models import InstanceConfig

    home = Home(tmp_path / "home", tmp_path / "scratch")
    port = free_port()
    for name in ("a", "b"):
        write_instance(home, name, llama_server_bin, tiny_model, on_demand=True)
    config = InstanceConfig.model_validate_json(home.paths.instance_config("a").read_text())
    estimate = footprint.estimate(config, gguf_file.facts(tiny_model), tiny_model.stat().st_size).total
    budget_gib = (estimate + 8 * footprint.MIB) / footprint.GIB
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": port, "ram_budget_gib": budget_gib}}))
    try:
        home.start_daemon(autostart=True)
        fleet = Fleet(home, f"http://127.0.0.1:{port}")
        with fleet.client() as c:
            for model in ("a", "b", "a"):
                assert c.chat.completions.create(model=model, messages=HELLO, max_tokens=2).choices
        evictions = [e.reason for name in ("a", "b") for e in home.events(name) if e.to_state == "stopping"]
        assert len(evictions) == 1 and evictions[0].startswith(f"evicted to start b (ram_budget_gib={budget_gib:g} ")
        assert {n: fleet.state(n) for n in ("a", "b")} == {"a": "ready", "b": "ready"}  # measured: both fit
        rss = sum(i["rss_bytes"] for i in fleet.ps()["instances"])
        assert rss <= estimate + 8 * footprint.MIB  # what made room for both
        counted = {i["name"]: i["budget_bytes"] for i in fleet.ps()["instances"]}
        assert all(0 < n < estimate for n in counted.values()), counted  # measured, not estimated
        home.ok("stop", "a", "b")  # (stopped by hand, so the next daemon leaves them stopped)
        home.ok("daemon", "stop")
        home.start_daemon()
        after = {i["name"]: (i["state"], i["budget_bytes"]) for i in fleet.ps("--all")["instances"]}
        # the new daemon starts from what the last one measured (kept in state.db), not the estimate
        assert after == {name: ("stopped", size) for name, size in counted.items()}
    finally:
        home.close()
