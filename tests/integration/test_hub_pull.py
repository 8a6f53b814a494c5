"""`llama-orch pull` against a stand-in for Hugging Face (tests.support.fake_hub): the errors a user
can meet, each with its exit code and words (no network among them), and a download cut midway,
taken up in the same run and, after Ctrl+C, by the next one."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from tests.support.fake_hub import FakeHub
from tests.support.orch import Home
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MODEL = b"GGUF" + os.urandom(300_000)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    fake = FakeHub({"owner/tiny-GGUF": {"tiny-Q8_0.gguf": MODEL, "tiny-Q4_K_M.gguf": MODEL[:1000]}})
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with fake:
        yield fake  # type: ignore[misc]


def downloaded(home: Home) -> list[str]:
    models = home.paths.models_dir
    return sorted(p.name for p in models.rglob("*.gguf")) if models.exists() else []


@pytest.mark.parametrize(("spec", "code", "words"), [
    ("owner/nope", 4, "error: Hugging Face has no owner/nope (revision main), or it is private"),
    ("owner/tiny-GGUF:Q2_K", 4, "error: owner/tiny-GGUF has no quant Q2_K; its model files: tiny-Q4_K_M.gguf, "
                                "tiny-Q8_0.gguf; name one, e.g. owner/tiny-GGUF:Q4_K_M"),
    ("tiny-GGUF", 2, "is not a Hugging Face model: give owner/repo or owner/repo:QUANT"),
    ("owner/tiny-GGUF:", 2, "names no quant after ':'"),
])
def test_a_bad_model_name_says_what_is_wrong_and_fetches_nothing(
    home: Home, hub: FakeHub, spec: str, code: int, words: str
) -> None:
    result = home.cli("pull", spec)
    assert result.code == code and words in result.err, str(result)
    assert downloaded(home) == [] and not hub.gets


def test_no_quant_takes_q4_k_m_like_llama_cpp(home: Home, hub: FakeHub) -> None:
    path = Path(home.ok("pull", "owner/tiny-GGUF").out.strip())
    assert path.name == "tiny-Q4_K_M.gguf" and path.read_bytes() == MODEL[:1000]


def test_a_download_cut_midway_is_taken_up_again_and_ends_whole(home: Home, hub: FakeHub) -> None:
    hub.cut_after, hub.cuts_left = 100_000, 1  # the first GET's connection drops a third of the way
    path = Path(home.ok("pull", "owner/tiny-GGUF:Q8_0").out.strip())
    assert path.read_bytes() == MODEL and hub.gets["tiny-Q8_0.gguf"] == 2


def test_an_unreachable_hub_fails_at_once_saying_where_and_what_to_do(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there: no network, as a pull meets it
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    started = time.monotonic()
    result = home.cli("pull", "owner/tiny-GGUF:Q8_0", timeout_s=30)
    took = time.monotonic() - started
    assert result.code == 1, str(result)
    assert f"error: cannot reach the Hugging Face Hub at {endpoint} (from HF_ENDPOINT): " in result.err, str(result)
    assert ("hint: check the network connection and proxy settings (HTTPS_PROXY), or set HF_ENDPOINT to a mirror "
            "you can reach; a model file you already have needs no download: llama-orch create NAME --model PATH"
            ) in result.err, str(result)
    # huggingface_hub's own retries (1+2+4+8+8 s, each printed) are not waited out
    assert took < 10 and "Retry" not in result.err and "Traceback" not in result.err, (took, str(result))
    models = home.paths.models_dir
    assert not models.exists() or [p for p in models.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("changed_upstream", [False, True], ids=["resumed", "changed-upstream"])
def test_a_pull_interrupted_midway_goes_on_from_there_in_the_next_run(
    home: Home, hub: FakeHub, changed_upstream: bool
) -> None:
    from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE  # what the client writes at a time

    big = b"GGUF" + os.urandom(DOWNLOAD_CHUNK_SIZE + 50_000)
    hub.repos["owner/big-GGUF"] = {"big-Q8_0.gguf": big}
    hub.hold_after = DOWNLOAD_CHUNK_SIZE + 1000  # the first GET stalls there: one chunk reaches the disk
    notes = home.paths.models_dir / "owner" / "big-GGUF" / ".cache" / "huggingface" / "download"

    def partials() -> list[Path]:
        return sorted(notes.glob("*.incomplete")) if notes.exists() else []

    proc = home.popen_cli("pull", "owner/big-GGUF:Q8_0")
    try:
        wait_until(lambda: [p for p in partials() if p.stat().st_size == DOWNLOAD_CHUNK_SIZE], timeout_s=30,
                   message="the first chunk written to a partial file")
        proc.send_signal(signal.SIGINT)  # Ctrl+C
        _out, err = proc.communicate(timeout=30)
    finally:
        hub.release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "error: interrupted" in err, err
    assert downloaded(home) == []  # no file that looks complete, ...
    [partial] = partials()  # ... only the partial one the next pull continues
    assert partial.stat().st_size == DOWNLOAD_CHUNK_SIZE

    if changed_upstream:  # another version now: its bytes are not stitched onto the old one's
        big = b"GGUF" + os.urandom(len(big) - 4)
        hub.repos["owner/big-GGUF"]["big-Q8_0.gguf"] = big
    path = Path(home.ok("pull", "owner/big-GGUF:Q8_0").out.strip())
    assert path == home.paths.models_dir / "owner" / "big-GGUF" / "big-Q8_0.gguf"
    assert path.read_bytes() == big and partials() == []
    assert hub.ranges == ["", "" if changed_upstream else f"bytes={DOWNLOAD_CHUNK_SIZE}-"]
    assert [m["file"] for m in json.loads(home.ok("models", "ls", "--json").out)] == ["big-Q8_0.gguf"]
    again = home.ok("pull", "owner/big-GGUF:Q8_0")
    assert again.out.strip() == str(path) and hub.gets["big-Q8_0.gguf"] == 2  # complete: not fetched again


@pytest.mark.parametrize("where", ["in-models-dir-without-notes", "in-huggingface-cache"])
def test_a_model_already_at_hand_is_not_fetched_again(home: Home, hub: FakeHub, tmp_path: Path, where: str) -> None:
    from huggingface_hub import hf_hub_download

    if where == "in-models-dir-without-notes":  # copied in by hand: its sha256 is the file's etag
        own = home.paths.models_dir / "owner" / "tiny-GGUF" / "tiny-Q8_0.gguf"
        own.parent.mkdir(parents=True)
        own.write_bytes(MODEL)
    else:  # fetched before by another tool into HF_HOME's cache
        hf_hub_download("owner/tiny-GGUF", "tiny-Q8_0.gguf", endpoint=hub.url, cache_dir=tmp_path / "hf" / "hub")
    fetched = hub.gets["tiny-Q8_0.gguf"]
    path = Path(home.ok("pull", "owner/tiny-GGUF:Q8_0").out.strip())
    assert path.read_bytes() == MODEL and hub.gets["tiny-Q8_0.gguf"] == fetched


def test_create_takes_one_of_model_and_hf(home: Home, hub: FakeHub, tmp_path: Path) -> None:
    both = home.cli("create", "x", "--model", str(tmp_path / "m.gguf"), "--hf", "owner/tiny-GGUF:Q8_0")
    neither = home.cli("create", "x")
    assert both.code == 2 and "give --model or --hf, not both" in both.err, str(both)
    assert neither.code == 2 and "give the model as --model PATH or --hf REPO" in neither.err, str(neither)
    assert not hub.gets and not home.paths.instance_config("x").exists()


def test_models_ls_and_rm_keep_what_an_instance_uses(home: Home, hub: FakeHub, tmp_path: Path) -> None:
    hub.repos["other/b-GGUF"] = {"b-Q8_0.gguf": MODEL[:2000]}
    used = Path(home.ok("pull", "owner/tiny-GGUF:Q8_0").out.strip())
    spare = Path(home.ok("pull", "other/b-GGUF").out.strip())
    home.write_instance("chat", model=used, port=free_port(), binary=home.fake_binary())
    home.paths.instance_config("broken").parent.mkdir(parents=True)
    home.paths.instance_config("broken").write_text('{"name": "broken", "model": {"path": "b-Q8_0.gguf"}, "x": 1}')

    listed = json.loads(home.ok("models", "ls", "--json").out)
    assert [(m["repo"], m["file"], m["bytes"], m["used_by"]) for m in listed] == [
        ("other/b-GGUF", "b-Q8_0.gguf", 2000, ["broken"]),  # a config that does not load still counts
        ("owner/tiny-GGUF", "tiny-Q8_0.gguf", len(MODEL), ["chat"])]
    table = home.ok("models", "ls").out
    assert "owner/tiny-GGUF" in table and "tiny-Q8_0.gguf" in table and "chat" in table

    refused = home.cli("models", "rm", "owner/tiny-GGUF:Q8_0")
    assert refused.code == 5 and "owner/tiny-GGUF:Q8_0 is the model of chat" in refused.err, str(refused)
    assert "(llama-orch rm chat)" in " ".join(refused.err.split()) and used.exists(), str(refused)

    home.paths.instance_config("broken").unlink()
    removed = home.ok("models", "rm", "other/b-GGUF")
    assert f"removed {spare}" in removed.out
    assert not (home.paths.models_dir / "other").exists()  # the repo's folder, huggingface_hub's notes and all
    left = json.loads(home.ok("models", "ls", "--json").out)
    assert used.exists() and [m["file"] for m in left] == ["tiny-Q8_0.gguf"]

    for spec, words in (("other/b-GGUF", "no model of other/b-GGUF has been fetched"),
                        ("owner/tiny-GGUF:Q2_K", "not fetched: owner/tiny-GGUF has no quant Q2_K")):
        missing = home.cli("models", "rm", spec)
        assert missing.code == 4 and words in missing.err, str(missing)
