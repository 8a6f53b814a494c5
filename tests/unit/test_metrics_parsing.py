"""The metrics sampler's pure parts: llama.cpp's Prometheus counters, rates, nvidia-smi's answer, and
how consecutive samples become tokens/s (a scripted fetch and a fake clock, no sockets)."""

from __future__ import annotations

import asyncio

from llama_orchestrator.daemon.gpu_memory import describe_gpu_memory, nvidia_smi_figures, nvidia_smi_processes
from llama_orchestrator.daemon.metrics_sampler import Counters, MetricsSampler, Target, Throughput, parse_metrics, rate

LLAMA_METRICS = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 42
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 128
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 812.5
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
"""


def test_parses_llama_cpp_counters() -> None:
    assert parse_metrics(LLAMA_METRICS) == Counters(tokens_predicted=128, prompt_tokens=42, requests_processing=2)


def test_labels_are_ignored_and_samples_summed_and_junk_skipped() -> None:
    text = (
        'llamacpp:tokens_predicted_total{slot="0"} 10 1700000000\n'
        'llamacpp:tokens_predicted_total{slot="1", note="a b}"} 5\n'
        "llamacpp:requests_processing NaN\n"
        "llamacpp:prompt_tokens_total not-a-number\n"
        "something_else 99\n"
        "llamacpp:tokens_predicted_total_extra 7\n"
    )
    assert parse_metrics(text) == Counters(tokens_predicted=15)


def test_absent_families_are_none() -> None:
    assert parse_metrics("") == Counters()
    assert parse_metrics("# only comments\n") == Counters()


def test_rate_between_samples_and_resets() -> None:
    assert rate(100, 10.0, 140, 12.0) == 20.0
    assert rate(100, 10.0, 100, 12.0) == 0.0
    assert rate(100, 10.0, 5, 12.0) is None  # counter went backwards: the server restarted
    assert rate(100, 10.0, 140, 10.0) is None


def parse_nvidia_smi(output: str) -> str | None:
    return describe_gpu_memory(nvidia_smi_figures(output))


def test_nvidia_smi_output() -> None:
    assert parse_nvidia_smi("1229, 8192\n") == "1.2/8.0 GiB"
    assert parse_nvidia_smi("1024, 8192\n512, 24576\n") == "1.0/8.0, 0.5/24.0 GiB"
    assert parse_nvidia_smi("") is None
    assert parse_nvidia_smi("[N/A], [N/A]\n") is None
    assert parse_nvidia_smi("garbage\n") is None
    assert nvidia_smi_figures("1024, 8192\n512, 24576\n") == [(1024.0, 8192.0), (512.0, 24576.0)]


class ScriptedSampler(MetricsSampler):
    """`_fetch` answers from a script of /metrics texts (None: no answer)."""

    def __init__(self, targets: list[Target], clock: list[float]) -> None:
        super().__init__(lambda: list(targets), monotonic=lambda: clock[0])
        self.targets = targets
        self.answers: dict[str, str | None] = {}

    async def _fetch(self, target: Target) -> str | None:
        return self.answers.get(target.name)


def _metrics(predicted: int, busy: int = 0) -> str:
    return f"llamacpp:tokens_predicted_total {predicted}\nllamacpp:requests_processing {busy}\n"


def test_tokens_per_second_from_consecutive_samples() -> None:
    clock = [100.0]
    targets = [Target("a", 11, "http://127.0.0.1:1", None)]
    sampler = ScriptedSampler(targets, clock)

    def step(at: float, answer: str | None) -> Throughput:
        clock[0] = at
        sampler.answers["a"] = answer
        asyncio.run(sampler.sample_once())
        return sampler.reading("a", targets[0].pid)

    assert step(100.0, _metrics(0, busy=1)) == Throughput(None, 1)  # one sample: no rate yet
    assert step(102.0, _metrics(50, busy=1)) == Throughput(25.0, 1)
    assert step(104.0, _metrics(50)) == Throughput(0.0, 0)  # idle again
    assert step(106.0, None) == Throughput(0.0, 0)  # a missed answer keeps the last figures
    assert sampler.reading("a", 12) == Throughput()  # figures of another process are not shown
    assert sampler.reading("a", None) == Throughput()

    targets[0] = Target("a", 12, "http://127.0.0.1:1", None)  # restarted: a new pid starts afresh
    assert step(108.0, _metrics(10)).tokens_per_s is None
    assert step(110.0, _metrics(30)).tokens_per_s == 10.0
    assert step(112.0, _metrics(4)).tokens_per_s is None  # counter reset without a pid change

    targets.clear()  # no longer ready (or metrics turned off): forgotten
    asyncio.run(sampler.sample_once())
    assert sampler.reading("a", 12) == Throughput()


def test_nvidia_smi_per_process_memory_sums_gpus_and_skips_what_windows_does_not_say() -> None:
    # one process on two GPUs (tensor split), another whose figure WDDM hides, a blank line
    output = "4242, 3000\n4242, 1000\n77, [N/A]\n\n901, 512\n"
    assert nvidia_smi_processes(output) == {4242: 4000 * 2**20, 901: 512 * 2**20}
    assert nvidia_smi_processes("No running processes found\n") == {}
