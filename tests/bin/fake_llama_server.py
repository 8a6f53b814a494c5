#!/usr/bin/env python3
"""A fake llama-server (stdlib only) that follows the real server's contract, plus fault switches.

The orchestrator renders the same argv for this script as for the real binary; faults are chosen
with environment variables, and tests/integration/test_server_contract.py runs one contract suite
against both, so this cannot drift from llama-server (reliability reference 1e, DESIGN 7).

Contract: the HTTP socket is bound before the model "loads"; while loading every route answers
503 "Loading model"; signal handlers are installed only after the load (so SIGTERM while loading
kills with the default action); the first SIGTERM/SIGINT after that exits 0 after cleanup, a
second one prints "Received second interrupt, terminating immediately." and exits 1; a bad model
or a taken port prints the real log lines and exits 1.

Fault switches (environment):
  FAKE_LOAD_SECONDS=S      load takes S seconds (default 0.05), a progress dot every ~0.2 s
  FAKE_TOKEN_DELAY=S       seconds per generated token (default 0)
  FAKE_CRASH_AFTER=S       abort (SIGABRT) S seconds after ready
  FAKE_HANG_HEALTH=1       accept connections but never answer /health or /v1/health
  FAKE_WEDGE=1             /health 200, but completions, embeddings and /slots never answer
  FAKE_FAIL_COMPLETIONS=T  /health 200, but completions whose request body contains T (any: *)
                           answer 500 ("CUDA error", as a GPU fault leaves llama-server)
  FAKE_IGNORE_SIGTERM=1    ignore SIGTERM (from the start; logs "fake: ignoring SIGTERM")
  FAKE_STOP_SECONDS=S      graceful shutdown takes S seconds (default 0)
  FAKE_SPAWN_GRANDCHILD=1  fork a sleeping child in our process group; logs "fake: grandchild pid N"
  FAKE_CHATTY=N            after ready, print N log lines per second
  FAKE_EXIT_AFTER_LOAD=C   exit with code C right after ready
"""

from __future__ import annotations

import gzip
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

BUILD = "b9999-fake"
WORDS = [" the", " cat", " sat", " on", " a", " mat", " and", " then", " it", " slept", "."]
VALUE_FLAGS = {
    "--host", "--port", "-m", "--model", "-a", "--alias", "-c", "--ctx-size", "-np", "--parallel",
    "-b", "--batch-size", "-ub", "--ubatch-size", "-t", "--threads", "-tb", "--threads-batch",
    "-ngl", "--n-gpu-layers", "--gpu-layers", "-dev", "--device", "--api-key", "--api-key-file",
    "-fa", "--flash-attn", "--pooling", "-to", "--timeout", "-n", "--n-predict", "--chat-template",
    "--log-file", "--slot-save-path", "-sm", "--split-mode", "-ts", "--tensor-split", "-mg",
    "--main-gpu", "--mmproj", "-ctk", "--cache-type-k", "-ctv", "--cache-type-v", "--seed", "-s",
}


def takes_value(flag: str, nxt: str) -> bool:
    """Unknown flags take the next word unless it is a flag; known ones also take negative numbers."""
    if not nxt.startswith("-"):
        return True
    return flag in VALUE_FLAGS and nxt[1:].replace(".", "", 1).isdigit()


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw.strip() else default


T_START = time.monotonic()


def raw(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def log(line: str, level: str = "I") -> None:
    """A line shaped like llama.cpp's common log: ``M.SS.mmm.uuu L text`` (time since start)."""
    us = int((time.monotonic() - T_START) * 1_000_000)
    stamp = f"{us // 60_000_000}.{us // 1_000_000 % 60:02d}.{us // 1000 % 1000:03d}.{us % 1000:03d}"
    raw(f"{stamp} {level} {line}")


def srv(func: str, msg: str, level: str = "I") -> None:
    """A line shaped like llama-server's ``SRV_INF``: ``srv  %12s: msg``."""
    log(f"srv  {func[:12]:>12}: {msg}", level)


def slot_log(func: str, slot: int, task: int, msg: str) -> None:
    log(f"slot {func[:12]:>12}: id {slot:2d} | task {task} | {msg}")


class Options:
    def __init__(self, argv: list[str]) -> None:
        self.host = "127.0.0.1"
        self.port = 8080
        self.model = ""
        self.alias = ""
        self.n_ctx = 4096
        self.n_parallel = -1
        self.api_keys: list[str] = []
        self.metrics = False
        self.embeddings = False
        self.slots = True
        self.pooling = ""
        i = 0
        while i < len(argv):
            flag, value, has_inline = argv[i], "", False
            if flag.startswith("--") and "=" in flag:
                flag, value = flag.split("=", 1)
                has_inline = True
            i += 1
            if not flag.startswith("-"):
                continue  # a stray positional value: ignore it
            if not has_inline and i < len(argv) and takes_value(flag, argv[i]):
                value = argv[i]
                i += 1
            self.apply(flag, value)

    def apply(self, flag: str, value: str) -> None:
        if flag == "--host":
            self.host = value
        elif flag == "--port":
            self.port = int(value)
        elif flag in ("-m", "--model"):
            self.model = value
        elif flag in ("-a", "--alias"):
            self.alias = value
        elif flag in ("-c", "--ctx-size"):
            self.n_ctx = int(value)
        elif flag in ("-np", "--parallel"):
            self.n_parallel = int(value)
        elif flag == "--api-key":
            self.api_keys += [k for k in value.split(",") if k]
        elif flag == "--api-key-file":
            text = Path(value).read_text(encoding="utf-8")
            self.api_keys += [k.strip() for k in text.splitlines() if k.strip()]
        elif flag == "--metrics":
            self.metrics = True
        elif flag in ("--embeddings", "--embedding"):
            self.embeddings = True
        elif flag == "--no-slots":
            self.slots = False
        elif flag == "--pooling":
            self.pooling = value

    @property
    def model_id(self) -> str:
        return self.alias or Path(self.model).name


class State:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.n_slots = 4 if opts.n_parallel <= 0 else opts.n_parallel
        self.busy = [False] * self.n_slots
        self.cond = threading.Condition()
        self.task_id = 0
        self.tokens_total = 0
        self.prompt_total = 0
        self.predicted_total = 0  # generated tokens only (llamacpp:tokens_predicted_total)
        self.token_delay = env_float("FAKE_TOKEN_DELAY", 0.0)
        self.hang_health = os.environ.get("FAKE_HANG_HEALTH") == "1"
        self.wedge = os.environ.get("FAKE_WEDGE") == "1"
        self.fail_completions = os.environ.get("FAKE_FAIL_COMPLETIONS", "")

    def acquire(self) -> tuple[int, int]:
        with self.cond:
            while all(self.busy):
                self.cond.wait()
            slot = self.busy.index(False)
            self.busy[slot] = True
            task = self.task_id
            self.task_id += 1
        slot_log("launch_slot_with_task", slot, task, "processing task, is_child = 0")
        return slot, task

    def release(self, slot: int, task: int, n_tokens: int) -> None:
        slot_log("release", slot, task, f"stop processing: n_tokens = {n_tokens}, truncated = 0")
        with self.cond:
            self.busy[slot] = False
            self.tokens_total += n_tokens
            self.cond.notify_all()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, addr: tuple[str, int], family: socket.AddressFamily, state: State) -> None:
        self.address_family = family
        self.state = state
        super().__init__(addr, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves getfqdn(host), which can stall on DNS: skip it.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # the real server logs no per-request lines at its default verbosity

    def version_string(self) -> str:
        return "llama.cpp"

    # --- plumbing ---------------------------------------------------------------------------
    def send_json(self, status: int, payload: object) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(self, status: int, kind: str, message: str) -> None:
        self.send_json(status, {"error": {"code": status, "message": message, "type": kind}})

    def send_text(self, status: int, text: str, ctype: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self) -> dict[str, object]:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                raw += self.rfile.read(size)
                self.rfile.readline()
        else:
            raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        parsed = json.loads(raw)
        return parsed if isinstance(parsed, dict) else {}

    def authorized(self) -> bool:
        keys = self.server.state.opts.api_keys
        if not keys:
            return True
        given = self.headers.get("Authorization") or self.headers.get("X-Api-Key") or ""
        given = given.removeprefix("Bearer ")
        return given in keys

    def block_forever(self) -> None:
        threading.Event().wait()

    # --- routing ------------------------------------------------------------------------------
    def do_OPTIONS(self) -> None:
        self.send_response(200)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, POST")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.route()

    def do_POST(self) -> None:
        self.route()

    def route(self) -> None:
        state = self.server.state
        path = urlsplit(self.path).path
        body: dict[str, object] = {}
        if self.command == "POST":
            try:
                body = self.read_body()
            except (ValueError, json.JSONDecodeError) as exc:
                self.send_error_json(400, "invalid_request_error", f"Failed to parse JSON: {exc}")
                return
        if not state.ready.is_set():
            self.send_error_json(503, "unavailable_error", "Loading model")
            return
        if path not in ("/health", "/v1/health", "/") and not self.authorized():
            srv("operator()", "unauthorized: Invalid API Key", "W")
            self.send_error_json(401, "authentication_error", "Invalid API Key")
            return
        handler = ROUTES.get((self.command, path))
        if handler is None:
            self.send_error_json(404, "not_found_error", "File Not Found")
            return
        handler(self, body)

    # --- endpoints ----------------------------------------------------------------------------
    def health(self, _body: dict[str, object]) -> None:
        if self.server.state.hang_health:
            self.block_forever()
        self.send_json(200, {"status": "ok"})

    def web_ui(self, _body: dict[str, object]) -> None:
        """The built-in web UI, served as llama-server serves it: one gzipped page, only to clients
        that accept gzip, with the COEP/COOP headers its Python sandbox needs. (Release builds have
        it; the tests' own build, made without npm, has none and answers 404.)"""
        if "gzip" not in self.headers.get("Accept-Encoding", ""):
            self.send_text(200, "Error: gzip is not supported by this browser", "text/plain")
            return
        body = gzip.compress(WEB_UI.encode())
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def models(self, _body: dict[str, object]) -> None:
        opts = self.server.state.opts
        meta = {"vocab_type": 1, "n_vocab": 313, "n_ctx_train": 512, "n_embd": 32, "n_params": 40000, "size": 160000}
        self.send_json(200, {
            "models": [{"name": opts.model_id, "model": opts.model_id, "modified_at": "", "size": "",
                        "digest": "", "type": "model", "description": "", "tags": [""],
                        "capabilities": ["completion"], "parameters": "", "details": {}}],
            "object": "list",
            "data": [{"id": opts.model_id, "object": "model", "created": int(time.time()),
                      "owned_by": "llamacpp", "meta": meta}],
        })

    def props(self, _body: dict[str, object]) -> None:
        state = self.server.state
        self.send_json(200, {
            "default_generation_settings": {"n_ctx": state.opts.n_ctx // state.n_slots, "params": {}},
            "total_slots": state.n_slots,
            "model_alias": state.opts.model_id,
            "model_path": state.opts.model,
            "modalities": {"vision": False, "audio": False},
            "chat_template": "",
            "build_info": BUILD,
            "is_sleeping": False,
        })

    def slots(self, _body: dict[str, object]) -> None:
        state = self.server.state
        if state.wedge:
            self.block_forever()
        if not state.opts.slots:
            self.send_error_json(501, "not_supported_error", NO_SLOTS)
            return
        if "fail_on_no_slot=1" in self.path and all(state.busy):
            self.send_error_json(503, "unavailable_error", "no slot available")
            return
        n_ctx = state.opts.n_ctx // state.n_slots
        self.send_json(200, [{"id": i, "n_ctx": n_ctx, "speculative": False, "is_processing": busy, "params": {}}
                             for i, busy in enumerate(list(state.busy))])

    def metrics(self, _body: dict[str, object]) -> None:
        state = self.server.state
        if not state.opts.metrics:
            self.send_error_json(501, "not_supported_error", NO_METRICS)
            return
        busy = sum(state.busy)
        lines = []
        for name, kind, value in [
            ("prompt_tokens_total", "counter", state.prompt_total),
            ("tokens_predicted_total", "counter", state.predicted_total),
            ("n_decode_total", "counter", state.tokens_total),
            ("requests_processing", "gauge", busy),
            ("requests_deferred", "gauge", 0),
        ]:
            lines += [f"# HELP llamacpp:{name} {name}", f"# TYPE llamacpp:{name} {kind}", f"llamacpp:{name} {value}"]
        self.send_text(200, "\n".join(lines) + "\n", "text/plain; version=0.0.4")

    def tokenize(self, body: dict[str, object]) -> None:
        content = str(body.get("content", ""))
        self.send_json(200, {"tokens": [3 + b for b in content.encode()]})

    def embeddings(self, body: dict[str, object]) -> None:
        state = self.server.state
        if not state.opts.embeddings:
            self.send_error_json(501, "not_supported_error", NO_EMBEDDINGS)
            return
        if state.opts.pooling == "none":
            self.send_error_json(400, "invalid_request_error", POOLING_NONE)
            return
        if state.wedge:
            self.block_forever()
        raw = body.get("input", "")
        inputs = raw if isinstance(raw, list) else [raw]
        data = []
        for i, text in enumerate(inputs):
            seed = sum(str(text).encode()) + 1
            vec = [((seed * (k + 7)) % 97) / 97.0 - 0.5 for k in range(32)]
            data.append({"embedding": vec, "index": i, "object": "embedding"})
        n = sum(len(str(t)) for t in inputs)
        self.send_json(200, {"model": state.opts.model_id, "object": "list", "data": data,
                             "usage": {"prompt_tokens": n, "total_tokens": n}})

    def chat(self, body: dict[str, object]) -> None:
        self.generate(body, chat=True)

    def completion(self, body: dict[str, object]) -> None:
        self.generate(body, chat=False)

    def generate(self, body: dict[str, object], chat: bool) -> None:
        state = self.server.state
        if state.wedge:
            self.block_forever()
        failing = state.fail_completions
        if failing and (failing == "*" or failing in json.dumps(body)):
            self.send_error_json(500, "server_error", "CUDA error: an illegal memory access was encountered")
            return
        n_predict = body.get("max_tokens", body.get("max_completion_tokens", body.get("n_predict", 8)))
        n = 8 if not isinstance(n_predict, int) or n_predict < 0 else n_predict
        prompt_tokens = len(json.dumps(body.get("messages", body.get("prompt", "")))) // 4 + 1
        slot, task = state.acquire()
        state.prompt_total += prompt_tokens
        produced = counted = 0
        try:
            if body.get("stream"):
                produced = self.stream(chat, n, prompt_tokens, slot, task)
            else:
                for _ in range(n):
                    if state.token_delay:
                        time.sleep(state.token_delay)
                    produced += 1
                # Count before answering, as the real server does: a /metrics read right after the
                # client has its answer must already see these tokens.
                state.predicted_total += produced
                counted = produced
                self.send_json(200, self.final_body(chat, n, prompt_tokens))
        finally:
            state.predicted_total += produced - counted
            state.release(slot, task, prompt_tokens + produced)

    def final_body(self, chat: bool, n: int, prompt_tokens: int) -> dict[str, object]:
        text = "".join(WORDS[i % len(WORDS)] for i in range(n))
        choice: dict[str, object] = {"finish_reason": "length", "index": 0}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice.update(text=text, logprobs=None)
        return {
            "choices": [choice], "created": int(time.time()), "model": self.server.state.opts.model_id,
            "system_fingerprint": BUILD, "object": "chat.completion" if chat else "text_completion",
            "usage": {"completion_tokens": n, "prompt_tokens": prompt_tokens, "total_tokens": n + prompt_tokens},
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        }

    def client_gone(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the peer to close; True if it did (EOF or reset)."""
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], timeout)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def stream(self, chat: bool, n: int, prompt_tokens: int, slot: int, task: int) -> int:
        state = self.server.state
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        model = state.opts.model_id
        obj = "chat.completion.chunk" if chat else "text_completion"

        def event(choice: dict[str, object], **extra: object) -> bytes:
            payload = {"choices": [choice], "created": int(time.time()), "id": cid, "model": model,
                       "system_fingerprint": BUILD, "object": obj, **extra}
            return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        produced = 0
        try:
            if chat:
                first = {"finish_reason": None, "index": 0, "delta": {"role": "assistant", "content": None}}
                self.write_chunk(event(first))
            for i in range(n):
                if self.client_gone(state.token_delay):
                    raise ConnectionResetError("client closed the stream")
                word = WORDS[i % len(WORDS)]
                choice = {"finish_reason": None, "index": 0,
                          **({"delta": {"content": word}} if chat else {"text": word, "logprobs": None})}
                self.write_chunk(event(choice))
                produced += 1
            last = {"finish_reason": "length", "index": 0, **({"delta": {}} if chat else {"text": ""})}
            usage = {"completion_tokens": n, "prompt_tokens": prompt_tokens, "total_tokens": n + prompt_tokens}
            self.write_chunk(event(last, usage=usage))
            self.write_chunk(b"data: [DONE]\n\n")
            self.write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError, OSError):
            srv("stop", f"cancel task, id_task = {task}", "W")
            self.close_connection = True
        return produced


NO_SLOTS = "This server does not support slots endpoint. Start it with `--slots`"
NO_METRICS = "This server does not support metrics endpoint. Start it with `--metrics`"
NO_EMBEDDINGS = "This server does not support embeddings. Start it with `--embeddings`"
POOLING_NONE = "Pooling type 'none' is not OAI compatible. Please use a different pooling type"

# A stand-in for the web UI's page: like the real one, it reaches the server by relative URLs.
WEB_UI = """<!doctype html><title>llama.cpp - chat</title><script>
window.ask = async () => (await (await fetch("./props")).json()).model_alias;
</script>"""

ROUTES = {
    ("GET", "/"): Handler.web_ui,
    ("GET", "/health"): Handler.health,
    ("GET", "/v1/health"): Handler.health,
    ("GET", "/models"): Handler.models,
    ("GET", "/v1/models"): Handler.models,
    ("GET", "/props"): Handler.props,
    ("GET", "/slots"): Handler.slots,
    ("GET", "/metrics"): Handler.metrics,
    ("POST", "/tokenize"): Handler.tokenize,
    ("POST", "/embeddings"): Handler.embeddings,
    ("POST", "/embedding"): Handler.embeddings,
    ("POST", "/v1/embeddings"): Handler.embeddings,
    ("POST", "/chat/completions"): Handler.chat,
    ("POST", "/v1/chat/completions"): Handler.chat,
    ("POST", "/completion"): Handler.completion,
    ("POST", "/completions"): Handler.completion,
    ("POST", "/v1/completions"): Handler.completion,
}


def bind(opts: Options, state: State) -> Server:
    family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
    try:
        return Server((opts.host, opts.port), family, state)
    except OSError:
        srv("start", f"couldn't bind HTTP server socket, hostname: {opts.host}, port: {opts.port}", "E")
        srv("operator()", "operator(): cleaning up before exit...")
        srv("llama_server", "exiting due to HTTP server error", "E")
        sys.exit(1)


def model_error(path: str) -> str | None:
    """The gguf reader's complaint about ``path``, or None when it starts with the GGUF magic."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        return f"gguf_init_from_file: failed to open GGUF file '{path}' ({exc.strerror})"
    if magic == b"GGUF":
        return None
    return f"gguf_init_from_reader: invalid magic characters: '{magic.decode('latin-1')}', expected 'GGUF'"


def load(opts: Options) -> None:
    srv("load_model", f"loading model '{opts.model}'")
    error = model_error(opts.model)
    if error is not None:
        log(error, "E")
        log(f"llama_model_load: error loading model: llama_model_loader: failed to load model from {opts.model}", "E")
        log("llama_model_load_from_file_impl: failed to load model", "E")
        log(f"cmn  common_init_: failed to load model '{opts.model}'", "E")
        srv("load_model", f"failed to load model, '{opts.model}'", "E")
        srv("operator()", "operator(): cleaning up before exit...")
        srv("llama_server", "exiting due to model loading error", "E")
        sys.exit(1)
    deadline = time.monotonic() + env_float("FAKE_LOAD_SECONDS", 0.05)
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(0.2, left))
        raw(".")


def spawn_grandchild() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True: time.sleep(60)"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    raw(f"fake: grandchild pid {child.pid}")


def chatter(per_second: float) -> None:
    start, printed = time.monotonic(), 0
    while True:
        due = int((time.monotonic() - start) * per_second)
        while printed < due:
            printed += 1
            log(f"fake: chatty line {printed} " + "x" * 60)
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    # Like the real server: no handlers until the model is loaded (SIGINT's Python default is
    # KeyboardInterrupt, so restore the OS default).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if os.environ.get("FAKE_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, lambda *_: raw("fake: ignoring SIGTERM"))
        raw("fake: ignoring SIGTERM")
    if "--version" in argv:
        print("version: 0.0.0-fake (build 1, commit fake)\nbuilt with python for fake", flush=True)
        return 0
    if "-h" in argv or "--help" in argv:
        print(__doc__, flush=True)
        return 0
    opts = Options(argv)
    state = State(opts)
    srv("llama_server", "initializing ...")
    if not opts.api_keys:
        srv("llama_server", "security: no API key is set and CORS allows all origins "
            "(see https://github.com/ggml-org/llama.cpp/pull/25655)", "W")
    httpd = bind(opts, state)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), name="http", daemon=True).start()
    if os.environ.get("FAKE_SPAWN_GRANDCHILD") == "1":
        spawn_grandchild()
    load(opts)
    n_ctx_slot = opts.n_ctx // state.n_slots
    srv("load_model", f"initializing, n_slots = {state.n_slots}, n_ctx_slot = {n_ctx_slot}, kv_unified = 'false'")
    state.ready.set()
    srv("llama_server", "model loaded")

    signals = {"n": 0}

    def on_signal(signum: int, _frame: object) -> None:
        signals["n"] += 1
        if signals["n"] > 1:
            raw("Received second interrupt, terminating immediately.")
            os._exit(1)
        state.stop.set()

    signal.signal(signal.SIGINT, on_signal)
    if os.environ.get("FAKE_IGNORE_SIGTERM") != "1":
        signal.signal(signal.SIGTERM, on_signal)
    host = f"[{opts.host}]" if ":" in opts.host else opts.host
    srv("llama_server", f"listening on http://{host}:{httpd.server_address[1]}")

    exit_code = os.environ.get("FAKE_EXIT_AFTER_LOAD", "").strip()
    if exit_code:
        os._exit(int(exit_code))
    crash_after = os.environ.get("FAKE_CRASH_AFTER", "").strip()
    if crash_after:
        timer = threading.Timer(float(crash_after), lambda: (raw("fake: aborting"), os.abort()))
        timer.daemon = True
        timer.start()
    chatty = env_float("FAKE_CHATTY", 0.0)
    if chatty > 0:
        threading.Thread(target=chatter, args=(chatty,), daemon=True).start()

    while not state.stop.wait(0.5):
        pass
    srv("operator()", "operator(): cleaning up before exit...")
    httpd.shutdown()
    httpd.server_close()
    stop_deadline = time.monotonic() + env_float("FAKE_STOP_SECONDS", 0.0)
    while (left := stop_deadline - time.monotonic()) > 0:
        time.sleep(min(0.1, left))
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
