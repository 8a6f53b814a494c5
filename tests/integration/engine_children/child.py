"""A small child program for engine tests: one behaviour per mode (stdlib only).

Usage: child.py MODE [ARGS...]
  env ARGS...        print {"instance", "token", "argv"} as JSON, exit 0
  exit CODE          exit with CODE
  abort              die by SIGABRT
  sleep              print "ready", sleep until killed (default SIGTERM action)
  graceful           print "ready"; on SIGTERM print "bye" and exit 0
  ignore-term        ignore SIGTERM, print "ready", sleep until SIGKILL
  fork-grandchild    start an `ignore-term` grandchild sharing our stdout, print its pid, sleep
  setsid-grandchild  same, but the grandchild runs in its own session (escapes our group)
  orphan             start a `sleep` grandchild, print its pid, exit 0 (it is re-parented)
  listen HOST PORT   listen on HOST:PORT, print "listening", sleep
  writer COUNT       write COUNT numbered lines as fast as possible, then exit 0
  writer-until PATH MAX  write numbered lines as fast as possible until PATH exists (checked every
                     100 lines) or MAX lines are written, then exit 0
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time


def say(text: str) -> None:
    os.write(1, (text + "\n").encode())


def sleep_forever() -> None:
    while True:
        time.sleep(3600)


def start_grandchild(mode: str, *, new_session: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, mode], stdin=subprocess.DEVNULL, start_new_session=new_session
    )


def main(argv: list[str]) -> int:
    mode, args = argv[0], argv[1:]
    if mode == "env":
        say(json.dumps({
            "instance": os.environ.get("LLAMA_ORCH_INSTANCE"),
            "token": os.environ.get("LLAMA_ORCH_CHILD_TOKEN"),
            "extra": os.environ.get("ENGINE_TEST_EXTRA"),
            "argv": args,
        }))
        return 0
    if mode == "exit":
        say("exiting")
        return int(args[0])
    if mode == "abort":
        os.abort()
    if mode == "sleep":
        say("ready")
        sleep_forever()
    if mode == "graceful":
        def on_term(signum: int, frame: object) -> None:
            say("bye")
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, on_term)
        say("ready")
        sleep_forever()
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("ready")
        sleep_forever()
    if mode in ("fork-grandchild", "setsid-grandchild"):
        grandchild = start_grandchild("ignore-term", new_session=mode == "setsid-grandchild")
        say(f"grandchild={grandchild.pid}")
        sleep_forever()
    if mode == "orphan":
        grandchild = start_grandchild("sleep", new_session=False)
        say(f"grandchild={grandchild.pid}")
        return 0
    if mode == "listen":
        host, port = args[0], int(args[1])
        server = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        server.bind((host, port))
        server.listen()
        say("listening")
        sleep_forever()
    if mode == "writer":
        for seq in range(int(args[0])):
            say(f"seq={seq:08d} " + "x" * 60)
        return 0
    if mode == "writer-until":
        for seq in range(int(args[1])):
            if seq % 100 == 0 and os.path.exists(args[0]):
                break
            say(f"seq={seq:08d} " + "x" * 60)
        return 0
    say(f"unknown mode {mode}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
