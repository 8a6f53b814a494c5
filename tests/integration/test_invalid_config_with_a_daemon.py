"""An instance whose config file breaks while a daemon runs: the daemon keeps its last valid
config, and `ps` marks it and `inspect` says why, rather than showing it as unchanged; one broken
before the daemon started (never loaded) is listed too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.orch import Home
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def test_ps_and_inspect_say_a_config_is_invalid_with_a_daemon(home: Home, model: Path) -> None:
    home.write_instance("tiny", model=model, port=free_port(), binary=home.fake_binary(), autostart=False)
    never = home.paths.instance_config("never")
    never.parent.mkdir(parents=True)
    never.write_text('{"name": "never",\n')
    home.start_daemon()
    home.paths.instance_config("tiny").write_text('{"name": "tiny",\n')

    ps = home.ok("ps", "-a")
    rows = {line.split()[0]: line.split()[1] for line in ps.out.splitlines()[2:] if line.strip()
            and not line.startswith("*")}
    assert rows == {"never": "stopped*", "tiny": "stopped*"}, str(ps)
    assert "* config invalid: `llama-orch config validate` says why" in " ".join(ps.out.split()), str(ps)
    detail = json.loads(home.ok("inspect", "tiny", "--json").out)["status"]
    assert detail["changed"].startswith("config invalid: "), detail
    shown = next(line for line in home.ok("inspect", "tiny").out.splitlines() if line.strip().startswith("changed"))
    assert "config invalid: " in shown and "applies it" not in shown, shown
