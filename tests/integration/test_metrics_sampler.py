"""The daemon's metrics sampler end to end: tokens/s and busy slots from `/metrics` of the fake and
of the real llama-server (`server.metrics: true`), and GPU memory from a fake `nvidia-smi` first on
the daemon's PATH (and none without it). The daemon is a real detached process."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest
from tests.support.orch import Home
from tests.support.ports import free_port
from tests.support.waiting import wait_until

from llama_orchestrator.tui.widgets import header_text
from llama_orchestrator.units import size

pytestmark = pytest.mark.integration


def _complete(port: int, n_predict: int) -> None:
    body = json.dumps({"prompt": "Once upon a time", "n_predict": n_predict, "cache_prompt": False}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/completion", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text: str = response.read().decode()
    return text


def _speed(home: Home, name: str) -> float | None:
    return home.status(name).tokens_per_s


def _rises_then_idles(home: Home, name: str, port: int, n_predict: int) -> None:
    wait_until(lambda: _speed(home, name) == 0.0, 15, 0.1, message=f"{name}: an idle rate of 0 after two samples")
    _complete(port, n_predict)
    wait_until(lambda: (_speed(home, name) or 0.0) > 0.0, 10, 0.1, message=f"{name}: tokens/s > 0 after a completion")
    wait_until(lambda: _speed(home, name) == 0.0, 10, 0.1, message=f"{name}: tokens/s back to 0 when idle")
    assert home.status(name).busy_slots == 0


def test_fake_server_counters_advance_and_the_daemon_reports_tokens_per_second(home: Home, model: Path) -> None:
    port = free_port()
    home.write_instance("fast", model=model, port=port, binary=home.fake_binary(),
                        server={"port": port, "metrics": True})
    plain_port = free_port()
    home.write_instance("plain", model=model, port=plain_port, binary=home.fake_binary())
    home.start_daemon()
    home.ok("start", "fast", "plain")

    before = _metrics(port)
    assert "llamacpp:tokens_predicted_total 0" in before, before
    _complete(port, 16)
    after = _metrics(port)
    assert "llamacpp:tokens_predicted_total 16" in after, after  # generated tokens only, not the prompt

    _rises_then_idles(home, "fast", port, 40)
    _complete(plain_port, 8)
    plain = home.status("plain")
    assert plain.tokens_per_s is None and plain.busy_slots is None, plain  # no --metrics: nothing known

    home.ok("stop", "fast")
    stopped = home.status("fast")
    assert stopped.tokens_per_s is None and stopped.busy_slots is None, stopped


@pytest.mark.real_server
def test_real_server_tokens_per_second_rise_after_a_completion_and_fall_back_to_zero(
    home: Home, llama_server_bin: Path, tiny_model: Path
) -> None:
    port = free_port()
    home.write_instance("real", model=tiny_model, port=port, binary=llama_server_bin,
                        server={"port": port, "metrics": True})
    home.start_daemon()
    home.ok("start", "real")
    _rises_then_idles(home, "real", port, 32)


def fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *gpus: str) -> None:
    """An `nvidia-smi` first on the PATH the daemon inherits, answering the query the daemon makes
    with one `used, total` line (MiB) per GPU, and failing any other."""
    bin_dir = tmp_path / "gpu-bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    lines = "".join(f"{gpu}\\n" for gpu in gpus)
    smi.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "--query-gpu=memory.used,memory.total" ] && [ "$2" = "--format=csv,noheader,nounits" ] || exit 3\n'
        f'printf "{lines}"\n'
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_gpu_memory_from_a_fake_nvidia_smi_on_the_daemons_path(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nvidia_smi(tmp_path, monkeypatch, "1229, 8192")
    home.start_daemon()
    status = wait_until(lambda: (s := home.client().status()).gpu_memory and s, 10, 0.1, message="gpu memory known")
    assert status.gpu_memory == "1.2/8.0 GiB"
    assert "gpu 1.2/8.0 GiB" in header_text(status, 200).plain


def test_the_gateways_metrics_export_gpu_memory_per_gpu(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nvidia_smi(tmp_path, monkeypatch, "1229, 8192", "512, 24576")
    port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": port}}))
    home.start_daemon()
    text = wait_until(lambda: "llama_orch_gpu_memory_used_bytes" in (t := _metrics(port)) and t, 10, 0.1,
                      message="GPU memory in the gateway's /metrics")
    gpu_lines = [line for line in text.splitlines() if line.startswith("llama_orch_gpu_memory")]
    assert gpu_lines == [
        f'llama_orch_gpu_memory_used_bytes{{gpu="0"}} {1229 * 2**20}',
        f'llama_orch_gpu_memory_used_bytes{{gpu="1"}} {512 * 2**20}',
        f'llama_orch_gpu_memory_total_bytes{{gpu="0"}} {8192 * 2**20}',
        f'llama_orch_gpu_memory_total_bytes{{gpu="1"}} {24576 * 2**20}',
    ]
    assert "# TYPE llama_orch_gpu_memory_used_bytes gauge" in text


def test_no_gpu_memory_without_nvidia_smi(home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dirs = [d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "nvidia-smi").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(dirs))
    assert shutil.which("nvidia-smi") is None
    home.start_daemon()
    for _ in range(3):  # asked repeatedly, as the dashboard does
        status = home.client().status()
    assert status.gpu_memory is None
    assert "gpu" not in header_text(status, 200).plain


FAKE_SMI_WITH_PROCESSES = """\
#!{python}
# nvidia-smi answering the daemon's two queries: one GPU, and for each process whose command line
# has `--port P` with P in {readings}, the MiB given there
import json, os, sys
args = sys.argv[1:]
if args == ["--query-gpu=memory.used,memory.total", "--format=csv,noheader,nounits"]:
    print("1000, 8192")
elif args == ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]:
    readings = json.load(open({readings!r}))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = open(f"/proc/{{pid}}/cmdline", "rb").read().decode().split("\\0")
        except OSError:
            continue
        if "--port" in argv and argv[argv.index("--port") + 1] in readings:
            print(f"{{pid}}, {{readings[argv[argv.index('--port') + 1]]}}")
else:
    sys.exit(3)
"""


def test_a_vram_budget_counts_what_nvidia_smi_says_each_instance_holds(
    home: Home, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two on-demand GPU instances (fake servers) under vram_budget_gib = 4 estimates: `a` holds
    3.5 estimates by nvidia-smi, so `b`'s first start (at its estimate) evicts it; `b` then holds
    a quarter, and `a` comes back beside it."""
    import openai

    from llama_orchestrator.config import footprint
    from llama_orchestrator.config.models import InstanceConfig
    from llama_orchestrator.gguf_file import GgufFacts

    ports = {"a": free_port(), "b": free_port()}
    for name, port in ports.items():
        home.write_instance(name, model=model, port=port, binary=home.fake_binary(), on_demand=True,
                            gpu={"backend": "cuda"})
    config = InstanceConfig.model_validate_json(home.paths.instance_config("a").read_text())
    estimate = footprint.estimate(config, GgufFacts(), model.stat().st_size).total
    mib = {"a": round(3.5 * estimate / 2**20), "b": round(0.25 * estimate / 2**20)}
    readings = tmp_path / "readings.json"
    readings.write_text(json.dumps({str(ports[n]): mib[n] for n in ports}))
    bin_dir = tmp_path / "gpu-bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_SMI_WITH_PROCESSES.format(python=shutil.which("python3"), readings=str(readings)))
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    gateway = free_port()
    budget_gib = 4 * estimate / 2**30
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": gateway, "vram_budget_gib": budget_gib}}))
    home.start_daemon()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gateway}/v1", api_key="-", max_retries=0, timeout=30)

    def ask(name: str) -> None:
        assert client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}]).choices

    def counted(name: str) -> int | None:
        return home.status(name).budget_bytes

    ask("a")
    wait_until(lambda: counted("a") == mib["a"] * 2**20, 15, 0.1, message="a's nvidia-smi reading counted")
    assert home.status("a").gpu_bytes == mib["a"] * 2**20
    ps = home.ok("ps").out
    header = next(line.split() for line in ps.splitlines() if line.strip().startswith("NAME"))
    row = next(line.split() for line in ps.splitlines() if line.strip().startswith("a "))
    assert header[7:9] == ["MEM", "GPU"] and row[8] == size(mib["a"] * 2**20), ps
    ask("b")
    [evicted] = [e.reason for e in home.events("a") if e.to_state == "stopping"]
    assert evicted.startswith(f"evicted to start b (vram_budget_gib={budget_gib:g} ("), evicted
    wait_until(lambda: counted("b") == mib["b"] * 2**20, 15, 0.1, message="b's nvidia-smi reading counted")
    assert counted("a") == mib["a"] * 2**20  # stopped: the most it was seen holding, for its next start
    ask("a")
    assert not any(e.to_state == "stopping" for e in home.events("b"))
    assert (home.status("a").state, home.status("b").state) == ("ready", "ready")
