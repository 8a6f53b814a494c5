"""`llama-orch pull` and `create --hf`: a model fetched from (a stand-in for) Hugging Face, then served.

huggingface_hub asks tests.support.fake_hub (HF_ENDPOINT), which serves the tiny model as
owner/tiny-GGUF; the real llama-server then loads the downloaded file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.fake_hub import FakeHub
from tests.support.orch import Home
from tests.support.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.real_server]


def test_pull_then_create_from_the_hub_and_serve_it(
    home: Home, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tiny_model.read_bytes()
    repo = {"tiny-Q8_0.gguf": data, "tiny-Q4_K_M.gguf": b"GGUF not this one", "mmproj-tiny-f16.gguf": b"GGUF",
            "README.md": b"# tiny"}
    with FakeHub({"owner/tiny-GGUF": repo}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no token or cache of the user's
        pulled = home.ok("pull", "owner/tiny-GGUF:q8_0")  # quants match in any case, as llama.cpp's -hf does
        path = Path(pulled.out.strip())
        assert path == home.paths.models_dir / "owner" / "tiny-GGUF" / "tiny-Q8_0.gguf", pulled
        assert path.read_bytes() == data
        again = home.ok("pull", "owner/tiny-GGUF:Q8_0")
        assert again.out == pulled.out and hub.gets["tiny-Q8_0.gguf"] == 1  # complete already: not fetched again

        port = free_port()
        home.ok("create", "tiny", "--hf", "owner/tiny-GGUF:Q8_0", "--port", str(port), "--", "-c", "512")
        config = json.loads(home.paths.instance_config("tiny").read_text(encoding="utf-8"))
        assert config["model"]["path"] == str(path) and hub.gets["tiny-Q8_0.gguf"] == 1
    up = home.ok("up", timeout_s=120)
    home.remember_daemon()
    assert f"tiny: ready on 127.0.0.1:{port}" in up.out, str(up)
    detail = json.loads(home.ok("inspect", "tiny", "--json").out)
    assert detail["model_file"]["bytes"] == len(data) and detail["model_file"]["architecture"] == "llama", detail
