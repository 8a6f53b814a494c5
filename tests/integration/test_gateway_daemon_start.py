"""The gateway unable to serve as asked when the daemon starts (its port held by another program,
its keys unreadable): the daemon runs on, says why and what to do, and the next `up` tries again."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tests.support.orch import Home
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration]


def test_a_held_gateway_port_names_its_holder_and_the_next_up_listens_once_it_is_free(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    home = Home(tmp_path / "home", tmp_path / "scratch")
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": port}}))
    try:
        home.start_daemon()
        wait_until(lambda: home.client().status().gateway.error, 30, 0.05, "the gateway's start tried")
        error = home.client().status().gateway.error or ""
        assert f"127.0.0.1:{port}: the port is already in use (held by pid {os.getpid()} " in error, error
        assert "choose another gateway.port" in error and "`llama-orch up` tries again" in error, error
        assert home.client().status().gateway.address is None
        up = home.ok("up")  # tried again, still held: `up` says so where the user looks
        assert f"warning: the gateway is not running: cannot listen on 127.0.0.1:{port}" in " ".join(up.err.split())

        holder.close()
        home.ok("up")
        gateway = home.client().status().gateway
        assert (gateway.address, gateway.error) == (f"http://127.0.0.1:{port}", None)
    finally:
        holder.close()
        home.close()


def test_daemon_start_warns_when_its_gateway_cannot_listen(tmp_path: Path) -> None:
    """The daemon runs on (exit 0, as `up` does), but `daemon start` says the gateway does not
    listen and why, right under its ✓, not only in `daemon status`; so does a second `daemon start`."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    home = Home(tmp_path / "home", tmp_path / "scratch")
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": port}}))
    try:
        started = home.ok("daemon", "start", "--no-autostart")
        home.remember_daemon()
        assert started.out.startswith("✓ daemon started (pid "), str(started)
        said = " ".join(started.err.split())
        assert f"warning: the gateway is not running: cannot listen on 127.0.0.1:{port}" in said, str(started)
        assert "choose another gateway.port" in said, str(started)
        again = home.ok("daemon", "start")
        assert again.out.startswith("✓ daemon already running"), str(again)
        assert f"warning: the gateway is not running: cannot listen on 127.0.0.1:{port}" in " ".join(
            again.err.split()), str(again)
    finally:
        holder.close()
        home.close()


def test_daemon_start_says_nothing_of_a_gateway_that_listens_or_is_disabled(tmp_path: Path) -> None:
    home = Home(tmp_path / "home", tmp_path / "scratch")  # its orchestrator.json disables the gateway
    try:
        assert home.ok("daemon", "start", "--no-autostart").err == ""
        home.remember_daemon()
        home.ok("daemon", "stop")
        home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": free_port()}}))
        assert home.ok("daemon", "start", "--no-autostart").err == ""
        home.remember_daemon()
        assert home.client().status().gateway.address  # it waited for the gateway's start: listening now
    finally:
        home.close()


def test_unreadable_keys_show_in_status_and_ps_until_up_reads_them(tmp_path: Path) -> None:
    """The gateway listens but refuses every request that needs a key (it fails closed); the
    daemon's status and `ps` say so, and stop saying it once `up` has read the keys."""
    keys = tmp_path / "keys.txt"
    home = Home(tmp_path / "home", tmp_path / "scratch")
    port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": port, "api_keys_file": str(keys)}}))
    try:
        home.start_daemon()
        wait_until(lambda: home.client().status().gateway.address, 30, 0.05, "the gateway listening")
        refusing = home.client().status().gateway.refusing or ""
        assert f"cannot read gateway.api_keys_file '{keys}'" in refusing and "llama-orch up" in refusing, refusing
        assert "(refusing requests: its API keys could not be read)" in home.ok("ps").out
        assert "warning: the gateway refuses every request that needs a key" in home.ok("up").err
        keys.write_text("k1\n")
        assert "gateway" not in home.ok("up").err
        assert home.client().status().gateway.refusing is None
        assert "refusing" not in home.ok("ps").out
    finally:
        home.close()


def test_up_says_a_changed_gateway_port_waits_for_a_daemon_restart(tmp_path: Path) -> None:
    home = Home(tmp_path / "home", tmp_path / "scratch")
    port, other = free_port(), free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": port}}))
    try:
        home.start_daemon()
        wait_until(lambda: home.client().status().gateway.address, 30, 0.05, "the gateway listening")
        assert "gateway" not in home.ok("up").err
        home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": other}}))
        said = " ".join(home.ok("up").err.split())
        assert ("warning: gateway.port changed in orchestrator.json: only a daemon restart applies it "
                "(llama-orch daemon stop --keep-instances; llama-orch daemon start); the gateway still listens "
                f"on http://127.0.0.1:{port}") in said, said
        assert home.client().status().gateway.restart_pending == ["port"]
    finally:
        home.close()


def test_up_says_the_keys_it_could_not_read_leave_the_old_ones_valid(tmp_path: Path) -> None:
    """A keys file moved away during a rotation: the running gateway keeps the keys it read before
    (it fails closed only when it had none), so a key meant to be removed stays valid; `up`,
    `daemon status` and `ps` say so (only daemon.log did), until `up` reads the file again."""
    keys = tmp_path / "keys.txt"
    keys.write_text("old-key\n")
    home = Home(tmp_path / "home", tmp_path / "scratch")
    port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": port, "api_keys_file": str(keys)}}))

    def models_status(key: str) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models",
                                         headers={"Authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        home.start_daemon()
        wait_until(lambda: home.client().status().gateway.address, 30, 0.05, "the gateway listening")
        assert "gateway" not in home.ok("up").err
        keys.rename(tmp_path / "keys.moved")
        said = " ".join(home.ok("up").err.split())
        assert (f"warning: orchestrator.json's gateway settings were not applied: cannot read gateway.api_keys_file "
                f"'{keys}': No such file or directory; the gateway runs on with the settings it had, the API keys it "
                "read before among them (a key removed since stays valid); create or fix the file") in said, said
        assert models_status("old-key") == 200
        status = " ".join(home.ok("daemon", "status").out.split())
        assert f"gateway http://127.0.0.1:{port}; orchestrator.json's gateway settings were not applied: cannot read" \
            in status, status
        assert ("(orchestrator.json's gateway settings not applied: `llama-orch daemon status` says why)"
                in home.ok("ps").out)

        keys.write_text("new-key\n")
        assert "gateway" not in home.ok("up").err
        assert home.client().status().gateway.settings_error is None
        assert "not applied" not in home.ok("ps").out
        assert (models_status("old-key"), models_status("new-key")) == (401, 200)
    finally:
        home.close()
