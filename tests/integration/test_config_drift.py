"""An edited config while its instance runs, with the fake llama-server behind a real daemon and
gateway: `ps` marks what `up` would apply, and `up` applies it. Settings the gateway reads
(request_filters, variants) wait for `up` as the command line does, but need no restart."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tests.support.orch import Home
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration]


def completion_tokens(gateway: str, model: str) -> int | str:
    """Tokens the fake server generated for a chat request naming `model` (it makes max_tokens
    of them, 8 when not told): shows which request filters the gateway applied. An error: its code."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(f"{gateway}/v1/chat/completions", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(json.loads(response.read())["usage"]["completion_tokens"])
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"


def test_edited_request_filters_and_variants_show_in_ps_until_up_applies_them_without_a_restart(
    home: Home, model: Path
) -> None:
    gateway_port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": gateway_port}}))
    gateway = f"http://127.0.0.1:{gateway_port}"
    config_file = home.write_instance("chat", model=model, port=free_port(), binary=home.fake_binary(),
                                      request_filters={"set_params": {"max_tokens": 3}})
    home.start_daemon()
    home.ok("up")
    pid = home.wait_state("chat", "ready").pid
    wait_until(lambda: home.client().status().gateway.address, 30, 0.05, "the gateway listening")
    assert completion_tokens(gateway, "chat") == 3
    assert "*" not in home.ok("ps").out

    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["request_filters"] = {"set_params": {"max_tokens": 5}}
    config["variants"] = {"chat-long": {"set_params": {"max_tokens": 7}}}
    config_file.write_text(json.dumps(config), encoding="utf-8")

    ps = home.ok("ps").out
    row = next(line.split() for line in ps.splitlines() if line.startswith("chat "))
    assert row[1] == "ready*", ps
    assert "`llama-orch up` applies it (restarting it only for a new command line" in " ".join(ps.split()), ps
    change = "settings request_filters.set_params, variants; no restart needed"
    assert home.status("chat").changed == change
    assert f"changed    {change} (`llama-orch up chat` applies it)" in home.ok("inspect", "chat").out
    # what the mark says: the gateway still applies the filters it was given
    assert completion_tokens(gateway, "chat") == 3
    assert completion_tokens(gateway, "chat-long") == "HTTP 404"

    home.ok("up")
    assert completion_tokens(gateway, "chat") == 5
    assert completion_tokens(gateway, "chat-long") == 7
    after = home.status("chat")
    assert (after.state, after.pid, after.changed) == ("ready", pid, None)  # the same process: no restart
    assert "*" not in home.ok("ps").out
    assert not [e for e in home.events("chat") if e.to_state == "stopping"]
