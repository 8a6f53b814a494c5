"""The daemon's SupervisorDirectory over stub supervisors (no processes): snapshots, wishes, counting."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.core import lifecycle as lc
from llama_orchestrator.core.states import InstanceState as S
from llama_orchestrator.daemon.directory import SupervisorDirectory


@dataclass
class StubSupervisor:
    config: InstanceConfig
    rt: lc.Runtime = field(default_factory=lambda: lc.Runtime(state=S.STOPPED))
    in_flight: int = 0
    events: list[object] = field(default_factory=list)
    evidence: list[str | None] = field(default_factory=list)  # what ended requests said of its health
    ready: float | None = None
    deps: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(monotonic=lambda: 50.0))
    child: SimpleNamespace | None = None  # its process (pid), while it has one

    def submit(self, event: object) -> None:
        self.events.append(event)

    def ready_in_s(self) -> float | None:
        return self.ready

    def note_traffic(self, evidence: str | None) -> None:
        self.evidence.append(evidence)

    async def wait_for_state(self, states: frozenset[S], timeout_s: float) -> bool:
        return self.rt.state in states


def config(name: str, **extra: object) -> InstanceConfig:
    return InstanceConfig.model_validate({
        "name": name, "model": {"path": "/m.gguf", "alias": "chat", "parallel": 2},
        "server": {"port": 8101, "host": "0.0.0.0", "metrics": True}, "on_demand": True, "idle_ttl_s": 30, **extra,
    })


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_snapshot_wishes_and_in_flight() -> None:
    from dataclasses import replace

    sup = StubSupervisor(config("a"))
    clock = Clock()
    directory = SupervisorDirectory({"a": sup}, clock=clock, environ={})  # type: ignore[dict-item]
    [u] = directory.upstreams()
    assert (u.name, u.alias, u.base_url, u.slots, u.metrics, u.on_demand, u.idle_ttl_s) == (
        "a", "chat", "http://127.0.0.1:8101", 2, True, True, 30)
    assert not u.routable and u.last_used == 0.0
    directory.request_start("a", "gateway")
    assert isinstance(sup.events[0], lc.Start)
    assert await directory.wait_routable("a", 0.01) is False
    sup.rt = replace(sup.rt, state=S.READY)
    [u] = directory.upstreams()
    assert u.routable and u.last_used == 100.0  # stamped when it became ready
    assert await directory.wait_routable("a", 1) is True
    clock.now = 150.0
    directory.begin_request("a")
    assert sup.in_flight == 1 and directory.upstreams()[0].last_used == 150.0
    directory.end_request("a", "it answered HTTP 500")
    assert sup.in_flight == 0 and sup.evidence == ["it answered HTTP 500"]  # to the supervisor's passive health
    directory.request_stop("a", "idle")
    assert isinstance(sup.events[-1], lc.Stop)
    sup.rt = replace(sup.rt, state=S.STOPPED)
    assert directory.upstreams()[0].last_used == 0.0  # forgotten once down
    sup.rt = replace(sup.rt, state=S.FAILED)
    assert await directory.wait_routable("a", 1) is False
    directory.request_start("ghost", "x")  # unknown names are ignored


def test_instance_key_file_is_read_at_most_once_a_second(tmp_path: object) -> None:
    from pathlib import Path

    key_file = Path(str(tmp_path)) / "key"
    key_file.write_text("first\n")
    clock = Clock()
    sup = StubSupervisor(config("a", server={"port": 8101, "api_key_file": str(key_file)}))
    directory = SupervisorDirectory({"a": sup}, clock=clock, environ={})  # type: ignore[dict-item]
    assert directory.upstreams()[0].api_key == "first"
    key_file.write_text("second\n")
    clock.now += 0.5
    assert directory.upstreams()[0].api_key == "first"  # cached, not re-read per request
    clock.now += 0.6
    assert directory.upstreams()[0].api_key == "second"
    key_file.unlink()
    clock.now += 1.1
    assert directory.upstreams()[0].api_key is None


def test_a_model_lookup_builds_only_the_instances_serving_it() -> None:
    sups = {
        "a": StubSupervisor(config("a")),  # alias "chat"
        "b": StubSupervisor(config("b", model={"path": "/m.gguf", "alias": "code"})),
        "c": StubSupervisor(config("c", model={"path": "/m.gguf"})),  # no alias: served as "c"
    }
    directory = SupervisorDirectory(sups, clock=Clock(), environ={})  # type: ignore[arg-type]
    assert [u.name for u in directory.upstreams()] == ["a", "b", "c"]
    assert [u.name for u in directory.upstreams("chat")] == ["a"]
    assert [u.name for u in directory.upstreams("b")] == ["b"]  # by name, though it has an alias
    assert [u.name for u in directory.upstreams("c")] == ["c"]
    assert directory.upstreams("nope") == []


def test_further_aliases_find_their_instance() -> None:
    sups = {
        "a": StubSupervisor(config("a", model={"path": "/m.gguf", "alias": "coder", "aliases": ["gpt-4o-mini"]})),
        "b": StubSupervisor(config("b", model={"path": "/m.gguf"})),
    }
    directory = SupervisorDirectory(sups, clock=Clock(), environ={})  # type: ignore[arg-type]
    assert [u.name for u in directory.upstreams("gpt-4o-mini")] == ["a"]
    assert directory.upstreams("gpt-4o-mini")[0].aliases == ("gpt-4o-mini",)
    assert directory.upstreams("b")[0].aliases == ()
    sups["b"].config = config("b", model={"path": "/m.gguf"}, variants={"b-long": {"set_params": {"max_tokens": 9}}})
    [b] = directory.upstreams("b-long")  # a variant routes as an alias, and is known as a variant (key scopes)
    assert (b.name, b.aliases, b.variants) == ("b", ("b-long",), ("b-long",))


def test_a_removed_instance_is_not_routed_to_but_its_requests_ends_still_count() -> None:
    sup = StubSupervisor(config("a"), in_flight=1)
    retiring: dict[str, StubSupervisor] = {}
    directory = SupervisorDirectory({}, clock=Clock(), environ={}, retiring=retiring)  # type: ignore[arg-type]
    retiring["a"] = sup  # `rm` took it out of the fleet while a request was in flight
    assert directory.upstreams() == [] and directory.upstreams("a") == []
    directory.end_request("a")
    assert sup.in_flight == 0  # or the drain before its stop would wait out the whole grace


async def test_wait_stopped_ends_when_the_process_is_gone() -> None:
    from dataclasses import replace

    sup = StubSupervisor(config("a"), rt=lc.Runtime(state=S.STOPPING))
    directory = SupervisorDirectory({"a": sup}, clock=Clock(), environ={})  # type: ignore[dict-item]
    assert await directory.wait_stopped("a", 0.01) is False  # still exiting
    sup.rt = replace(sup.rt, state=S.STOPPED)
    assert await directory.wait_stopped("a", 1) is True
    assert await directory.wait_stopped("removed", 1) is True


def test_an_instance_not_up_says_when_it_should_be_ready() -> None:
    from dataclasses import replace

    sup = StubSupervisor(config("a"), ready=7.5)
    directory = SupervisorDirectory({"a": sup}, clock=Clock(), environ={})  # type: ignore[dict-item]
    assert directory.upstreams()[0].ready_in_s == 7.5
    sup.rt = replace(sup.rt, state=S.READY)
    assert directory.upstreams()[0].ready_in_s is None  # up: nothing to wait for


def test_supervisor_expects_the_median_learned_load_time_less_what_has_passed(tmp_path: object) -> None:
    from pathlib import Path

    from llama_orchestrator.config.paths import HomePaths
    from llama_orchestrator.daemon.supervisor import InstanceSupervisor, SupervisorDeps
    from llama_orchestrator.store import Store

    paths = HomePaths(Path(str(tmp_path)) / "home")
    paths.home.mkdir(parents=True)
    clock = Clock()
    with Store.open(Path(str(tmp_path)) / "state.db") as store:
        deps = SupervisorDeps(paths=paths, store=store, prober=None, resolve_binary=lambda _c: None,  # type: ignore[arg-type]
                              on_event=lambda _e: None, monotonic=clock)
        sup = InstanceSupervisor(config("a"), deps, None)
        assert sup.ready_in_s() is None  # never timed: the gateway falls back to its default
        for seconds in (4.0, 9.0, 6.0):
            store.record_load_time("a", "/m.gguf", seconds, 0.0)
        sup = InstanceSupervisor(config("a"), deps, None)
        assert sup.ready_in_s() == 6.0  # stopped: a whole load
        sup.rt = lc.Runtime(state=S.STARTING, started_at=clock.now - 2.5)
        assert sup.ready_in_s() == 3.5
        sup.rt = lc.Runtime(state=S.STARTING, started_at=clock.now - 60)
        assert sup.ready_in_s() == 0.0  # late: any moment now


def test_residency_and_eviction_priority_reach_the_gateway() -> None:
    """`up_for_s` is counted on the supervisor's clock, from the moment it last became ready."""
    sup = StubSupervisor(config("a", min_residency_s=120, eviction_priority=-3))
    directory = SupervisorDirectory({"a": sup}, clock=Clock(), environ={})  # type: ignore[dict-item]
    [u] = directory.upstreams()
    assert (u.up_for_s, u.min_residency_s, u.eviction_priority) == (None, 120, -3)  # stopped: not up
    assert u.listed and not SupervisorDirectory(
        {"a": StubSupervisor(config("a", unlisted=True))}, environ={}).upstreams()[0].listed  # type: ignore[dict-item]
    sup.rt = lc.Runtime(state=S.READY, ready_at=20.0)
    [u] = directory.upstreams()
    assert u.up_for_s == 30.0 and u.residency_left_s == 90.0
    sup.rt = lc.Runtime(state=S.UNHEALTHY, ready_at=20.0)
    assert directory.upstreams()[0].up_for_s == 30.0  # still loaded, still counting


def test_what_the_config_sets_is_made_once_per_config() -> None:
    sup = StubSupervisor(config("a", request_filters={"set_params": {"temperature": 0.6}}))
    directory = SupervisorDirectory({"a": sup}, clock=Clock(), environ={})  # type: ignore[dict-item]
    rewrite = directory.upstreams()[0].rewrite_body
    assert rewrite is not None and rewrite(b'{"model": "chat"}', "chat") == b'{"model":"chat","temperature":0.6}'
    assert directory.upstreams()[0].rewrite_body is rewrite  # made once, not per request
    sup.config = config("a")  # a reload without filters
    assert directory.upstreams()[0].rewrite_body is None
    sup.config = config("a", model={"path": "/m.gguf", "alias": "coder", "aliases": ["c2"], "parallel": 4})
    assert [u.alias for u in directory.upstreams("coder")] == ["coder"]  # a reload's names route at once
    assert [u.slots for u in directory.upstreams("c2")] == [4] and directory.upstreams("chat") == []
    assert [u.name for u in directory.upstreams("a")] == ["a"]
    sup.config = config("a", variants={"a-cold": {"set_params": {"temperature": 0.1}}})
    [u] = directory.upstreams("a-cold")  # a variant routes here like an alias, with its own filters
    assert u.aliases == ("a-cold",) and u.rewrite_body is not None
    assert u.rewrite_body(b'{"model":"a-cold"}', "a-cold") == b'{"model":"a-cold","temperature":0.1}'
    assert u.rewrite_body(b'{"model":"a"}', "a") == b'{"model":"a"}'  # the instance's own name: untouched


def test_a_snapshot_gives_the_model_files_path_size_and_time(tmp_path: Path) -> None:
    """(A split model's parts: tests/unit/test_gguf_file.py.)"""
    single = tmp_path / "one.gguf"
    single.write_bytes(b"y" * 42)
    sup = StubSupervisor(config("a", model={"path": str(single), "alias": "chat"}))
    [u] = SupervisorDirectory({"a": sup}, clock=Clock(), environ={}).upstreams()  # type: ignore[dict-item]
    assert (u.model_path, u.model_bytes, u.model_mtime) == (str(single), 42, single.stat().st_mtime)


GIB = 1024 ** 3


def test_memory_is_the_config_s_then_the_largest_resident_size_seen_up_then_the_estimate(tiny_model: Path) -> None:
    import psutil

    from llama_orchestrator import gguf_file
    from llama_orchestrator.config import footprint

    sup = StubSupervisor(config("a", model={"path": str(tiny_model)}))
    clock = Clock()
    directory = SupervisorDirectory({"a": sup}, clock=clock, environ={})  # type: ignore[dict-item]
    [u] = directory.upstreams()
    assert (u.memory_pool, u.memory_bytes) == ("ram", 0)  # no budget: nothing read
    directory.measure_memory = True
    estimate = footprint.estimate(sup.config, gguf_file.facts(tiny_model), tiny_model.stat().st_size).total
    assert directory.upstreams()[0].memory_bytes == estimate
    sup.child = SimpleNamespace(pid=os.getpid())  # this test's own process stands in for llama-server
    sup.rt = lc.Runtime(state=S.STARTING)
    assert directory.upstreams()[0].memory_bytes == estimate  # loading: it holds only part yet
    sup.rt = lc.Runtime(state=S.READY)
    clock.now += 10
    seen = directory.upstreams()[0].memory_bytes
    assert abs(seen - psutil.Process().memory_info().rss) < 64 * 1024 * 1024 and seen != estimate
    sup.child, sup.rt = None, lc.Runtime(state=S.STOPPED)
    assert directory.upstreams()[0].memory_bytes == seen  # what the next start will hold again
    sup.config = config("a", model={"path": str(tiny_model)}, on_demand=True, idle_ttl_s=99)
    assert directory.upstreams()[0].memory_bytes == seen  # a change that holds no more memory keeps it
    sup.config = config("a", model={"path": str(tiny_model)}, memory_gib=1.5)
    assert directory.upstreams()[0].memory_bytes == int(1.5 * GIB)
    sup.config = config("a", model={"path": str(tiny_model), "context_size": 4096})
    assert directory.upstreams()[0].memory_bytes < estimate  # a new config starts from its own estimate
    sup.config = config("a", model={"path": str(tiny_model)}, gpu={"backend": "cuda"})
    sup.child, sup.rt = SimpleNamespace(pid=os.getpid()), lc.Runtime(state=S.READY)
    clock.now += 10
    [gpu] = directory.upstreams()
    assert gpu.memory_pool == "vram" and gpu.memory_bytes == footprint.estimate(
        sup.config, gguf_file.facts(tiny_model), tiny_model.stat().st_size).total  # host RSS is not GPU memory
    readings = {os.getpid(): 3 * GIB}  # what nvidia-smi says the process holds on the GPUs
    on_gpu = SupervisorDirectory({"a": sup}, clock=clock, environ={},  # type: ignore[dict-item]
                                 gpu_bytes=readings.get)
    on_gpu.measure_memory = True
    assert on_gpu.upstreams()[0].memory_bytes == 3 * GIB
    readings[os.getpid()] = 2 * GIB
    clock.now += 10
    assert on_gpu.upstreams()[0].memory_bytes == 3 * GIB  # the most it was seen holding


class History:
    """A hand-written stand-in for the Store's memory peaks."""

    def __init__(self) -> None:
        self.peaks: dict[tuple[str, str], int] = {}
        self.recorded: list[tuple[str, int]] = []

    def learned_memory_peak(self, instance: str, fingerprint: str) -> int | None:
        return self.peaks.get((instance, fingerprint))

    def record_memory_peak(self, instance: str, fingerprint: str, size: int, at: float) -> None:
        self.recorded.append((instance, size))
        self.peaks[(instance, fingerprint)] = max(size, self.peaks.get((instance, fingerprint), 0))


def test_what_an_earlier_daemon_saw_counts_before_the_first_run_and_new_peaks_are_kept(tiny_model: Path) -> None:
    from llama_orchestrator.config import footprint

    sup = StubSupervisor(config("a", model={"path": str(tiny_model)}))
    history = History()
    history.peaks[("a", footprint.fingerprint(sup.config))] = 5 * GIB  # an earlier run with this config
    readings = {os.getpid(): 6 * GIB}
    clock = Clock()
    directory = SupervisorDirectory({"a": sup}, clock=clock, environ={}, history=history,  # type: ignore[dict-item]
                                    gpu_bytes=readings.get)
    directory.measure_memory = True
    assert directory.upstreams()[0].memory_bytes == 5 * GIB and history.recorded == []
    sup.config = config("a", model={"path": str(tiny_model)}, gpu={"backend": "cuda"})  # another fingerprint
    assert directory.upstreams()[0].memory_bytes < GIB  # the estimate: nothing known of this config
    sup.child, sup.rt = SimpleNamespace(pid=os.getpid()), lc.Runtime(state=S.READY)
    assert directory.upstreams()[0].memory_bytes == 6 * GIB and history.recorded == [("a", 6 * GIB)]
    readings[os.getpid()] = 6 * GIB + 512 * 1024  # grew by less than a MiB: not worth a write
    clock.now += 10
    assert directory.upstreams()[0].memory_bytes == 6 * GIB and len(history.recorded) == 1
