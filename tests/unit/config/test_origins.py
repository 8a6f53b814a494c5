"""`gateway.cors_origins`: which browser origins a pattern allows, and the error for one that is no origin."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from llama_orchestrator.config.loader import load_fleet
from llama_orchestrator.config.origins import DEFAULT_ORIGINS, local_host, origin_matcher, origin_problem
from llama_orchestrator.config.paths import HomePaths


@pytest.mark.parametrize(("origin", "allowed"), [
    ("http://localhost", True),  # port 80: no port in the header
    ("http://localhost:3000", True),
    ("http://LOCALHOST:5173", True),
    ("http://127.0.0.1:8080", True),
    ("http://[::1]:8080", True),
    ("https://localhost:8443", True),
    ("app://obsidian.md", True),
    ("tauri://localhost", True),
    ("chrome-extension://jfgfiigpkhlkbnfnbobbkinehhfdhndo", True),  # an extension the user installed
    ("https://example.com", False),
    ("http://localhost.evil.example", False),  # a web site named like this machine
    ("http://localhost:3000.evil.example", False),
    ("http://127.0.0.1.nip.io", False),
    ("null", False),  # file:// pages and sandboxed frames of any site
])
def test_the_default_allows_pages_and_apps_on_this_machine_only(origin: str, allowed: bool) -> None:
    assert origin_matcher(DEFAULT_ORIGINS)(origin) is allowed


def test_patterns_star_within_host_and_alone() -> None:
    sub = origin_matcher(["https://*.example.com"])
    assert sub("https://chat.example.com") and not sub("https://example.com.evil.example")
    assert not sub("http://chat.example.com")  # the scheme is part of the origin
    exact = origin_matcher(["https://chat.example.com:8443"])
    assert exact("https://chat.example.com:8443") and not exact("https://chat.example.com")
    assert origin_matcher(["*"])("https://anything.example")
    assert origin_problem(["null"]) is None and origin_matcher(["null"])("null")  # file:// pages, by choice
    assert not origin_matcher([])("http://localhost")


@pytest.mark.parametrize("pattern", ["localhost:3000", "http://localhost:3000/", "http://localhost/chat", "", "*.com"])
def test_what_is_not_an_origin_is_named_with_how_to_write_one(pattern: str) -> None:
    problem = origin_problem(["http://localhost:*", pattern])
    assert problem is not None and problem.startswith(f"{pattern!r} is not an origin: write scheme://host[:port]")


def test_several_bad_origins_are_named_together_with_one_hint() -> None:
    problem = origin_problem(["localhost:5173", "*", "https://chat.example.com/"])
    assert problem is not None and problem.startswith("'localhost:5173', 'https://chat.example.com/' are not origins")
    assert problem.count("scheme://host[:port]") == 1
    assert origin_problem(["*", "http://localhost:*"]) is None


def test_a_bad_origin_in_orchestrator_json_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    home = HomePaths(tmp_path / "home")
    home.home.mkdir(parents=True)
    home.orchestrator_file.write_text(json.dumps({"gateway": {"cors_origins": ["http://localhost:*", "localhost"]}}))
    errors = load_fleet(home, which=lambda _: "x").errors
    assert [e.field for e in errors] == ["gateway.cors_origins"]
    assert "'localhost' is not an origin" in errors[0].message and errors[0].file.endswith("orchestrator.json")


@pytest.mark.parametrize(("host", "local"), [
    ("127.0.0.1:8000", True),
    ("localhost:8000", True),
    ("LOCALHOST", True),
    ("[::1]:8000", True),
    ("10.0.0.5:8000", True),  # an address: the browser was pointed at it, not at a site's name
    ("host.docker.internal:8000", True),  # a container on Docker Desktop reaching the host
    ("chat.localhost:3000", True),
    ("my-pc.local", True),
    ("llm:8000", True),  # a hosts-file alias: public DNS names have a dot
    ("", True),
    ("rebind.evil.example:8000", False),
    ("127.0.0.1.nip.io:8000", False),  # a public name that resolves to loopback
    ("[evil]:80", False),
])
def test_local_host_accepts_what_no_web_site_can_point_at_this_machine(host: str, local: bool) -> None:
    assert local_host(host) is local


def test_local_host_accepts_this_machines_own_name() -> None:
    assert local_host(f"{socket.gethostname()}:8000")
