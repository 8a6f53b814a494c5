"""The llama-server contract (reliability reference 1e), checked against the fake and the real binary.

One set of tests parametrized over ``[fake, real]``: if the real llama-server changes behaviour,
or the fake drifts from it, a test here fails. Then fake-only tests check each ``FAKE_*`` fault
switch does what tests/bin/fake_llama_server.py says, since other suites rely on them.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from tests.support.ports import free_port
from tests.support.procs import kill_group, marked_env, running
from tests.support.waiting import wait_until

from llama_orchestrator.config.argv import build_command
from llama_orchestrator.config.models import InstanceConfig

pytestmark = pytest.mark.integration

ALIAS = "tiny"
LOADING_BODY = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
INVALID_KEY_BODY = {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}}
CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
READY_S = 15.0
EXIT_S = 15.0


@dataclass(frozen=True)
class Backend:
    name: str
    argv0: tuple[str, ...]

    def cmd(self, model: Path | str, port: int, *extra: str) -> list[str]:
        return [*self.argv0, "--host", "127.0.0.1", "--port", str(port), "-m", str(model),
                "--alias", ALIAS, "-c", "8192", "-np", "2", "-t", "1", *extra]


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.real_server)])
def backend(request: pytest.FixtureRequest, fake_server_cmd: list[str]) -> Backend:
    if request.param == "real":
        return Backend("real", (str(request.getfixturevalue("llama_server_bin")),))
    return Backend("fake", tuple(fake_server_cmd))


@pytest.fixture
def fake(fake_server_cmd: list[str]) -> Backend:
    return Backend("fake", tuple(fake_server_cmd))


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def request(self, method: str, path: str, body: object = None, headers: Mapping[str, str] | None = None,
                timeout: float = 10.0) -> tuple[int, bytes]:
        return http_request(self.port, method, path, body, headers, timeout)

    def get_json(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, object]:
        status, raw = self.request("GET", path, headers=headers)
        return status, json.loads(raw)

    def wait_exit(self, timeout: float = EXIT_S) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server did not exit within {timeout}s; log:\n{self.log()}") from None

    def wait_log(self, needle: str, count: int = 1, timeout: float = READY_S) -> str:
        return wait_until(lambda: self.log() if self.log().count(needle) >= count else "", timeout,
                          message=f"{needle!r} x{count} in the server log")


def http_request(port: int, method: str, path: str, body: object = None,
                 headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body)
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@contextmanager
def start(backend: Backend, tmp_path: Path, model: Path | str, *extra: str,
          env: Mapping[str, str] | None = None, port: int | None = None) -> Iterator[Server]:
    """Start a server (its process group is always killed afterwards) without waiting for it."""
    port = port or free_port()
    log_path = tmp_path / f"{backend.name}-{port}.log"
    with running(backend.cmd(model, port, *extra), marked_env(None, **(env or {})), log_path) as proc:
        yield Server(proc, port, log_path)


def health_status(server: Server) -> int | str:
    try:
        return server.request("GET", "/health", timeout=5)[0]
    except ConnectionRefusedError:
        return "refused"
    except ConnectionError:  # reset by a server that is going away
        return "reset"


def wait_ready(server: Server) -> None:
    def ready() -> bool:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited {server.proc.returncode} before ready; log:\n{server.log()}")
        return health_status(server) == 200

    wait_until(ready, READY_S, message=f"/health 200 on port {server.port}")


@contextmanager
def ready_server(backend: Backend, tmp_path: Path, model: Path, *extra: str,
                 env: Mapping[str, str] | None = None) -> Iterator[Server]:
    with start(backend, tmp_path, model, *extra, env=env) as server:
        wait_ready(server)
        yield server


def sse_events(raw: bytes) -> list[str]:
    return [line[len("data: "):] for line in raw.decode("utf-8", "replace").split("\n\n") if line.startswith("data: ")]


# --- contract: fake and real -----------------------------------------------------------------


def test_health_is_refused_or_loading_until_ready(backend: Backend, tmp_path: Path, tiny_model: Path) -> None:
    seen: list[object] = []

    def probe() -> bool:
        try:
            status, raw = http_request(port, "GET", "/health", timeout=5)
        except ConnectionRefusedError:
            seen.append("refused")
            return False
        seen.append((status, json.loads(raw)))
        return status == 200

    env = {"FAKE_LOAD_SECONDS": "0.5"}
    port = free_port()
    with start(backend, tmp_path, tiny_model, env=env, port=port) as server:
        wait_until(probe, READY_S, interval_s=0.005, message="/health 200")
        assert seen[-1] == (200, {"status": "ok"})
        before = seen[:-1]
        assert all(s == "refused" or s == (503, LOADING_BODY) for s in before), before
        if backend.name == "fake":  # the real one loads the tiny model in ~10 ms
            assert (503, LOADING_BODY) in before
        assert server.get_json("/v1/health") == (200, {"status": "ok"})


def test_models_lists_the_alias(backend: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with ready_server(backend, tmp_path, tiny_model) as server:
        for path in ("/v1/models", "/models"):
            status, body = server.get_json(path)
            assert status == 200
            assert isinstance(body, dict) and body["object"] == "list"
            assert [m["id"] for m in body["data"]] == [ALIAS]


def test_chat_completion_returns_a_choice(backend: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with ready_server(backend, tmp_path, tiny_model) as server:
        status, raw = server.request("POST", "/v1/chat/completions", CHAT)
        assert status == 200, raw
        body = json.loads(raw)
        assert body["object"] == "chat.completion"
        message = body["choices"][0]["message"]
        assert message["role"] == "assistant" and isinstance(message["content"], str)
        assert body["usage"]["completion_tokens"] <= 8


def test_streaming_chat_ends_with_done(backend: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with ready_server(backend, tmp_path, tiny_model) as server:
        status, raw = server.request("POST", "/v1/chat/completions", {**CHAT, "stream": True})
        assert status == 200
        events = sse_events(raw)
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert chunks and all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")


def test_sigterm_after_load_exits_zero(backend: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with ready_server(backend, tmp_path, tiny_model) as server:
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait_exit() == 0
        assert "cleaning up before exit" in server.log()


def test_second_signal_exits_one(backend: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with ready_server(backend, tmp_path, tiny_model) as server:
        # Stopped, the process keeps both signals pending (different signals never merge), so
        # on SIGCONT the second lands while the first shutdown is under way: no timing race.
        server.proc.send_signal(signal.SIGSTOP)
        stopped = psutil.Process(server.proc.pid)
        # SIGCONT discards a SIGSTOP not yet acted on, so wait until the process is really stopped.
        wait_until(lambda: stopped.status() == psutil.STATUS_STOPPED, 5, message="server stopped")
        server.proc.send_signal(signal.SIGTERM)
        server.proc.send_signal(signal.SIGINT)
        server.proc.send_signal(signal.SIGCONT)
        second = "Received second interrupt, terminating immediately."
        if backend.name == "fake":
            server.wait_log(second)
        else:
            # Once (a full run under load) the first signal's shutdown ended the process before any
            # thread took the second: no line, exit 0. Either way the process must end or say why not.
            wait_until(lambda: second in server.log() or server.proc.poll() is not None, 15,
                       message="the second signal handled or the process gone")
        try:
            code: int | None = server.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        if backend.name == "fake":
            assert code == 1
        else:
            # The real binary calls exit(1) inside the signal handler while its main thread is
            # cleaning up: usually exit 1, but in about 1 run in 8 here it aborted (-6, a
            # destructor racing a live thread) or hung, and once (a CI run) the main thread's own
            # exit 0 won the race. Supervisors must still escalate to SIGKILL after the second
            # signal; this pins the outcomes we have seen.
            assert code in (1, 0, -signal.SIGABRT, None)


@pytest.mark.parametrize("kind", ["missing", "not-gguf"])
def test_bad_model_exits_one_with_log_line(backend: Backend, tmp_path: Path, kind: str) -> None:
    model = tmp_path / "model.gguf"
    if kind == "not-gguf":
        model.write_bytes(b"hello, not a model\n")
    with start(backend, tmp_path, model) as server:
        assert server.wait_exit() == 1
        log = server.log()
        assert f"llama_model_load: error loading model: llama_model_loader: failed to load model from {model}" in log
        assert f"load_model: failed to load model, '{model}'" in log
        assert "exiting due to model loading error" in log


def test_taken_port_exits_one_with_log_line(backend: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with start(backend, tmp_path, tiny_model, port=port) as server:
            assert server.wait_exit() == 1
            log = server.log()
            assert f"couldn't bind HTTP server socket, hostname: 127.0.0.1, port: {port}" in log
            assert "exiting due to HTTP server error" in log


def test_metrics_needs_the_flag(backend: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with ready_server(backend, tmp_path, tiny_model) as server:
        status, body = server.get_json("/metrics")
        assert status == 501
        assert isinstance(body, dict) and body["error"]["type"] == "not_supported_error"
    with ready_server(backend, tmp_path, tiny_model, "--metrics") as server:
        status, raw = server.request("GET", "/metrics")
        assert status == 200
        assert re.search(rb"^llamacpp:tokens_predicted_total \d", raw, re.MULTILINE), raw[:300]


def test_api_key_file_guards_everything_but_health(backend: Backend, tmp_path: Path, tiny_model: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text("s3cret-key\n")
    with ready_server(backend, tmp_path, tiny_model, "--api-key-file", str(key_file)) as server:
        for path in ("/v1/models", "/slots"):
            assert server.get_json(path) == (401, INVALID_KEY_BODY)
        status, raw = server.request("POST", "/v1/chat/completions", CHAT, headers={"Authorization": "Bearer nope"})
        assert (status, json.loads(raw)) == (401, INVALID_KEY_BODY)
        assert server.get_json("/health") == (200, {"status": "ok"})
        assert server.get_json("/v1/models", {"Authorization": "Bearer s3cret-key"})[0] == 200
        assert server.get_json("/v1/models", {"X-Api-Key": "s3cret-key"})[0] == 200
        status, _ = server.request("POST", "/v1/chat/completions", CHAT, headers={"X-Api-Key": "s3cret-key"})
        assert status == 200


def test_embeddings_need_the_flag(backend: Backend, tmp_path: Path, tiny_model: Path) -> None:
    request = {"input": ["hello", "world"], "model": ALIAS}
    with ready_server(backend, tmp_path, tiny_model) as server:
        status, raw = server.request("POST", "/v1/embeddings", request)
        assert status == 501 and json.loads(raw)["error"]["type"] == "not_supported_error"
    with ready_server(backend, tmp_path, tiny_model, "--embeddings") as server:
        status, raw = server.request("POST", "/v1/embeddings", request)
        assert status == 200, raw
        data = json.loads(raw)["data"]
        assert [d["index"] for d in data] == [0, 1]
        assert all(len(d["embedding"]) == 32 and all(isinstance(x, float) for x in d["embedding"]) for d in data)


def slots_busy(server: Server) -> list[bool]:
    status, body = server.get_json("/slots")
    assert status == 200 and isinstance(body, list)
    return [bool(s["is_processing"]) for s in body]


def test_stream_disconnect_frees_the_slot(backend: Backend, tmp_path: Path, tiny_model: Path) -> None:
    # ignore_eos + many tokens keeps the real server generating for seconds; the fake gets a delay.
    request = {**CHAT, "max_tokens": 6000, "ignore_eos": True, "stream": True}
    with ready_server(backend, tmp_path, tiny_model, env={"FAKE_TOKEN_DELAY": "0.01"}) as server:
        body = json.dumps(request).encode()
        client = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            received = b""
            while received.count(b"data: ") < 3:
                chunk = client.recv(65536)
                assert chunk, f"stream ended early: {received[-300:]!r}"
                received += chunk
            assert any(slots_busy(server)), "the stream should hold a slot while it runs"
        finally:
            client.close()
        wait_until(lambda: not any(slots_busy(server)), 10, message="slot freed after the client went away")
        server.wait_log("cancel task")


@pytest.mark.real_server
def test_a_built_in_chat_template_name_applies_only_as_rendered_with_no_jinja(
    llama_server_bin: Path, tmp_path: Path, tiny_model: Path
) -> None:
    """llama-server takes `--chat-template gemma` as Jinja text, so every prompt becomes "gemma";
    the command rendered from `model.chat_template: "gemma"` applies Gemma's template."""
    real = Backend("real", (str(llama_server_bin),))
    config = InstanceConfig.model_validate(
        {"name": "t", "model": {"path": str(tiny_model), "chat_template": "gemma"}, "server": {"port": 8001}}
    )
    argv = build_command(config, str(llama_server_bin), {}).argv
    chat = {"messages": [{"role": "user", "content": "Say hi"}]}
    with ready_server(real, tmp_path, tiny_model, *argv[argv.index("--chat-template"):]) as server:
        status, raw = server.request("POST", "/apply-template", chat)
        assert status == 200, raw
        assert json.loads(raw)["prompt"] == "<start_of_turn>user\nSay hi<end_of_turn>\n<start_of_turn>model\n"
    with ready_server(real, tmp_path, tiny_model, "--chat-template", "gemma") as server:
        status, raw = server.request("POST", "/apply-template", chat)
        assert (status, json.loads(raw)["prompt"]) == (200, "gemma")


@pytest.mark.real_server
def test_the_demo_model_loads_and_generates_on_this_build(llama_server_bin: Path, tmp_path: Path,
                                                           demo_model: Path) -> None:
    """Gemma 3 270M, the demo's model, on the build every test uses: the tiny model's shapes do not
    reach every kernel a real model does (ggml's AMX matmul in this version crashed loading Gemma on
    a 4th-gen Xeon while every tiny-model test passed), so a build that cannot run it fails here."""
    real = Backend("real", (str(llama_server_bin),))
    with ready_server(real, tmp_path, demo_model) as server:
        status, raw = server.request("POST", "/completion", {"prompt": "The capital of France is", "n_predict": 4,
                                                             "temperature": 0}, timeout=60)
        assert status == 200, raw
        answer = json.loads(raw)
        assert answer["tokens_predicted"] == 4 and answer["content"].strip(), answer


# --- fake-only: the fault switches -----------------------------------------------------------


def test_fake_slow_load_answers_503_and_dies_on_sigterm(fake: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with start(fake, tmp_path, tiny_model, env={"FAKE_LOAD_SECONDS": "60"}) as server:
        wait_until(lambda: health_status(server) == 503, READY_S, message="503 while loading")
        assert server.get_json("/v1/models") == (503, LOADING_BODY)
        server.wait_log("\n.\n", count=2)  # progress dots while loading
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait_exit() == -signal.SIGTERM  # no handler before the model is loaded


def test_fake_crash_after_aborts(fake: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with ready_server(fake, tmp_path, tiny_model, env={"FAKE_CRASH_AFTER": "0.3"}) as server:
        assert server.wait_exit() == -signal.SIGABRT


def test_fake_hang_health_accepts_but_never_answers(fake: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with start(fake, tmp_path, tiny_model, env={"FAKE_HANG_HEALTH": "1"}) as server:
        server.wait_log("listening on")
        assert server.get_json("/v1/models")[0] == 200
        with pytest.raises(TimeoutError):
            server.request("GET", "/health", timeout=0.5)


def test_fake_wedge_keeps_health_but_never_generates(fake: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with ready_server(fake, tmp_path, tiny_model, env={"FAKE_WEDGE": "1"}) as server:
        assert server.get_json("/health") == (200, {"status": "ok"})
        with pytest.raises(TimeoutError):
            server.request("POST", "/v1/chat/completions", CHAT, timeout=0.5)
        with pytest.raises(TimeoutError):
            server.request("GET", "/slots", timeout=0.5)


def test_fake_ignore_sigterm_survives_it(fake: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with ready_server(fake, tmp_path, tiny_model, env={"FAKE_IGNORE_SIGTERM": "1"}) as server:
        server.proc.send_signal(signal.SIGTERM)
        server.wait_log("fake: ignoring SIGTERM", count=2)  # once at startup, once on receipt
        assert server.proc.poll() is None
        assert health_status(server) == 200


def test_fake_stop_seconds_then_second_signal(fake: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with ready_server(fake, tmp_path, tiny_model, env={"FAKE_STOP_SECONDS": "60"}) as server:
        server.proc.send_signal(signal.SIGTERM)
        server.wait_log("cleaning up before exit")
        assert server.proc.poll() is None  # still inside its slow graceful shutdown
        server.proc.send_signal(signal.SIGINT)
        assert server.wait_exit() == 1


def test_fake_grandchild_outlives_its_parent_until_the_group_is_killed(
    fake: Backend, tmp_path: Path, tiny_model: Path
) -> None:
    with ready_server(fake, tmp_path, tiny_model, env={"FAKE_SPAWN_GRANDCHILD": "1"}) as server:
        match = re.search(r"fake: grandchild pid (\d+)", server.log())
        assert match, server.log()
        grandchild = psutil.Process(int(match.group(1)))
        assert os.getpgid(grandchild.pid) == server.proc.pid
        server.proc.kill()  # only the parent
        assert server.wait_exit() == -signal.SIGKILL
        assert grandchild.is_running() and grandchild.status() != psutil.STATUS_ZOMBIE
        kill_group(server.proc)
        wait_until(lambda: not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE, 10,
                   message="grandchild killed with the process group")


def test_fake_chatty_logs_lines_per_second(fake: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with ready_server(fake, tmp_path, tiny_model, env={"FAKE_CHATTY": "500"}) as server:
        server.wait_log("fake: chatty line", count=100)


def test_fake_exit_after_load_uses_the_code(fake: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with start(fake, tmp_path, tiny_model, env={"FAKE_EXIT_AFTER_LOAD": "3"}) as server:
        assert server.wait_exit() == 3
        assert "listening on" in server.log()


def test_forking_wrapper_leaves_the_server_when_only_the_wrapper_dies(
    fake: Backend, forking_wrapper_sh: Path, tmp_path: Path, tiny_model: Path
) -> None:
    wrapped = Backend("wrapped", ("bash", str(forking_wrapper_sh), *fake.argv0))
    with ready_server(wrapped, tmp_path, tiny_model) as server:
        server.proc.kill()  # the wrapper only, as a naive supervisor would
        assert server.wait_exit() == -signal.SIGKILL
        assert health_status(server) == 200  # the real work goes on, orphaned
        kill_group(server.proc)
        wait_until(lambda: health_status(server) == "refused", 10, message="server gone with its group")


def test_fake_serves_many_concurrent_streams(fake: Backend, tmp_path: Path, tiny_model: Path) -> None:
    with ready_server(fake, tmp_path, tiny_model, "-np", "64") as server:
        def one(_: int) -> str:
            return sse_events(server.request("POST", "/v1/chat/completions", {**CHAT, "stream": True})[1])[-1]

        with concurrent.futures.ThreadPoolExecutor(max_workers=128) as pool:
            results = list(pool.map(one, range(256)))
        assert results == ["[DONE]"] * 256

