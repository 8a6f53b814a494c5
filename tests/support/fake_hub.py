"""A stand-in for huggingface.co's file API, on a loopback port, for `llama-orch pull` tests.

    with FakeHub({"owner/repo": {"model-Q8_0.gguf": data}}) as hub:
        env = {"HF_ENDPOINT": hub.url}      # huggingface_hub then asks it instead of huggingface.co
        hub.gets["model-Q8_0.gguf"]         # GETs of that file (a complete file is not fetched again)
        hub.hold_after = 2**20              # the next GET stops after 1 MiB and waits (a pull to interrupt) ...
        hub.release.set()                   # ... until this, then closes the connection

It answers what huggingface_hub asks: the repo's file tree (`/api/models/<repo>/tree/<rev>`) and
each file (`/<repo>/resolve/<rev>/<file>`, HEAD and GET, byte ranges for a resumed download),
with the headers it checks (X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size), and 404s with
the X-Error-Code it reads (RepoNotFound, EntryNotFound).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = repos
        self.gets: Counter[str] = Counter()
        self.cut_after: int | None = None  # GET bodies stop after this many bytes (then the socket closes) ...
        self.cuts_left = 0  # ... this many times
        self.ranges: list[str] = []  # the Range header of each GET ("" without one)
        self.hold_after: int | None = None  # the next GET body stops after this many bytes, until `release` is set
        self.release = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub.answer(self, body=False)

            def do_GET(self) -> None:
                hub.answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, req: BaseHTTPRequestHandler, body: bool) -> None:
        path = req.path.split("?", 1)[0]
        if tree := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", path):
            files = self.repos.get(tree.group(1))
            if files is None:
                return self._not_found(req, "RepoNotFound", body)
            listing = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest(),
                        "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}}
                       for name, data in files.items()]
            return self._send(req, 200, json.dumps(listing).encode(), {"Content-Type": "application/json"}, body)
        if resolve := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            files = self.repos.get(resolve.group(1))
            if files is None:
                return self._not_found(req, "RepoNotFound", body)
            name = resolve.group(3)
            if name not in files:
                return self._not_found(req, "EntryNotFound", body)
            data = files[name]
            sha = hashlib.sha256(data).hexdigest()
            headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{sha}"', "X-Linked-Etag": f'"{sha}"',
                       "X-Linked-Size": str(len(data)), "Accept-Ranges": "bytes",
                       "Content-Type": "application/octet-stream"}
            status, start = 200, 0
            cut = None
            hold: tuple[int, threading.Event] | None = None
            if body:
                self.gets[name] += 1
                self.ranges.append(req.headers.get("Range", ""))
                if self.cuts_left > 0:
                    self.cuts_left -= 1
                    cut = self.cut_after
                if self.hold_after is not None:
                    hold, self.hold_after = (self.hold_after, self.release), None
                if ranged := re.fullmatch(r"bytes=(\d+)-", req.headers.get("Range", "")):
                    start = int(ranged.group(1))
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return self._send(req, status, data[start:], headers, body, cut=cut, hold=hold)
        return self._not_found(req, "RepoNotFound", body)

    @staticmethod
    def _not_found(req: BaseHTTPRequestHandler, code: str, body: bool) -> None:
        FakeHub._send(req, 404, json.dumps({"error": f"{code}"}).encode(),
                      {"X-Error-Code": code, "X-Error-Message": code, "Content-Type": "application/json"}, body)

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str], body: bool,
              cut: int | None = None, hold: tuple[int, threading.Event] | None = None) -> None:
        req.send_response(status)
        for name, value in headers.items():
            req.send_header(name, value)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if body and hold:
            req.wfile.write(data[:hold[0]])
            req.wfile.flush()
            hold[1].wait(timeout=60)  # bounded: a test that never releases still ends
            req.close_connection = True
        elif body:
            req.wfile.write(data if cut is None else data[:cut])
            if cut is not None:
                req.close_connection = True
