"""Pure routing choices: replicas, admission (queue, start, 429/503), eviction, idle TTL."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.gateway.gateway_fakes import upstream

from llama_orchestrator.core import routing as r
from llama_orchestrator.core.states import InstanceState as S


def test_least_in_flight_wins_and_unroutable_replicas_leave_rotation() -> None:
    a = upstream("a", "m", in_flight=3)
    b = upstream("b", "m", in_flight=1)
    c = upstream("c", "m", in_flight=0, state=S.UNHEALTHY)
    assert r.pick_replica([a, b, c]) == b
    assert r.pick_replica([c]) is None


def test_default_model_only_when_one_model_is_served() -> None:
    assert r.default_model([upstream("a", "m"), upstream("b", "m")]) == "m"
    assert r.default_model([upstream("a"), upstream("b")]) is None
    assert r.default_model([]) is None


def test_a_configured_default_model_wins_even_over_the_only_one_served() -> None:
    assert r.default_model([upstream("a"), upstream("b")], "b") == "b"
    assert r.default_model([upstream("a")], "elsewhere") == "elsewhere"  # then 404 names it
    assert r.default_model([upstream("a")], None) == "a"


def test_admit_dispatches_to_a_free_replica() -> None:
    a = upstream("a", "m", slots=1, in_flight=1)
    b = upstream("b", "m", slots=2, in_flight=1)
    assert r.admit([a, b], queued=0, queue_size=4) == r.Dispatch(b)


def test_admit_queues_then_overloads_when_every_slot_is_busy() -> None:
    a = upstream("a", "m", slots=1, in_flight=1)
    b = upstream("b", "m", slots=1, in_flight=1)
    assert r.admit([a, b], queued=7, queue_size=4) == r.Enqueue()
    assert r.admit([a, b], queued=8, queue_size=4) == r.Overloaded()
    assert r.admit([a], queued=0, queue_size=0) == r.Overloaded()


def test_unknown_slot_count_means_no_limit() -> None:
    a = upstream("a", "m", in_flight=500)
    assert r.admit([a], queued=0, queue_size=0) == r.Dispatch(a)


def test_admit_starts_a_stopped_on_demand_replica_or_waits_for_one_coming_up() -> None:
    stopped = upstream("b", "m", state=S.STOPPED, on_demand=True)
    assert r.admit([stopped], 0, 4) == r.StartFirst("b")
    starting = upstream("a", "m", state=S.STARTING)
    assert r.admit([starting, stopped], 0, 4) == r.AwaitStart("a")


def test_a_replica_being_restarted_is_waited_for_and_one_being_stopped_is_not() -> None:
    restarting = upstream("a", "m", state=S.STOPPING, restarting=True)
    assert r.admit([restarting], 0, 4) == r.AwaitStart("a")
    assert r.admit([restarting, upstream("b", "m")], 0, 4) == r.Dispatch(upstream("b", "m"))
    stopping = upstream("a", "m", state=S.STOPPING)  # stopped for good (a user's stop)
    decision = r.admit([stopping], 0, 4)
    assert isinstance(decision, r.Unavailable) and "a is stopping" in decision.reason


def test_admit_unavailable_names_why() -> None:
    manual = upstream("a", "m", state=S.STOPPED)
    failed = upstream("b", "m", state=S.FAILED)
    decision = r.admit([manual, failed], 0, 4)
    assert isinstance(decision, r.Unavailable)
    assert "a is stopped" in decision.reason and "b is failed" in decision.reason


def test_evictions_pick_least_recently_used_idle_unpinned() -> None:
    ups = [
        upstream("old", on_demand=True, last_used=1.0),
        upstream("older-busy", on_demand=True, last_used=0.5, in_flight=1),
        upstream("oldest-pinned", on_demand=True, last_used=0.1, pinned=True),
        upstream("new", on_demand=True, last_used=5.0),
        upstream("always-on", last_used=0.0),  # not on-demand: never counted, never evicted
        upstream("target", on_demand=True, state=S.STOPPED),
    ]
    assert r.choose_evictions(ups, max_loaded=4, starting={"target"}) == ["old"]
    assert r.choose_evictions(ups, max_loaded=3, starting={"target"}) == ["old", "new"]
    assert r.choose_evictions(ups, max_loaded=2, starting={"target"}) is None
    assert r.choose_evictions(ups, max_loaded=5, starting={"target"}) == []
    assert r.choose_evictions(ups, max_loaded=None, starting={"target"}) == []


def test_evictions_count_instances_already_asked_to_start() -> None:
    ups = [upstream("a", on_demand=True, state=S.STOPPED), upstream("b", on_demand=True, state=S.STOPPED),
           upstream("c", on_demand=True, last_used=3.0)]
    assert r.choose_evictions(ups, max_loaded=2, starting={"a", "b"}) == ["c"]


def test_an_awaited_instance_is_never_a_victim_and_an_awaited_stopped_one_takes_no_room() -> None:
    ups = [upstream("fresh", on_demand=True, last_used=1.0),  # just ready, its request not sent yet
           upstream("idle", on_demand=True, last_used=2.0),
           upstream("queued", on_demand=True, state=S.STOPPED),  # a request waits for room to start it
           upstream("target", on_demand=True, state=S.STOPPED)]
    assert r.choose_evictions(ups, max_loaded=2, starting={"target"}) == ["fresh"]
    assert r.choose_evictions(ups, max_loaded=2, starting={"target"}, awaited={"fresh", "queued"}) == ["idle"]
    assert r.choose_evictions(ups, max_loaded=1, starting={"target"}, awaited={"fresh"}) is None


def test_an_instance_within_its_min_residency_is_not_a_victim_and_room_in_says_when_it_can_go() -> None:
    ups = [upstream("young", on_demand=True, last_used=1.0, up_for_s=3.0, min_residency_s=10.0),
           upstream("settled", on_demand=True, last_used=2.0, up_for_s=30.0, min_residency_s=10.0),
           upstream("target", on_demand=True, state=S.STOPPED)]
    assert r.choose_evictions(ups, max_loaded=2, starting={"target"}) == ["settled"]  # though young is older
    assert r.choose_evictions(ups, max_loaded=1, starting={"target"}) is None
    assert r.room_in_s(ups, {"target"}, ()) == 7.0
    assert r.room_in_s(ups, {"target"}, {"young"}) is None  # awaited: the residency's end would not help
    busy = [replace(u, in_flight=1) if u.name == "young" else u for u in ups]
    assert r.room_in_s(busy, {"target"}, ()) is None  # its request's end wakes the waiters anyway
    over = [replace(u, up_for_s=12.0) if u.name == "young" else u for u in ups]
    assert r.choose_evictions(over, max_loaded=1, starting={"target"}) == ["young", "settled"]
    assert r.room_in_s(over, {"target"}, ()) is None


def test_lower_eviction_priority_goes_first_then_least_recently_used() -> None:
    ups = [upstream("chat", on_demand=True, last_used=1.0, eviction_priority=10),
           upstream("embed", on_demand=True, last_used=5.0),
           upstream("rerank", on_demand=True, last_used=4.0),
           upstream("target", on_demand=True, state=S.STOPPED)]
    assert r.choose_evictions(ups, max_loaded=3, starting={"target"}) == ["rerank"]
    assert r.choose_evictions(ups, max_loaded=2, starting={"target"}) == ["rerank", "embed"]
    assert r.choose_evictions(ups, max_loaded=1, starting={"target"}) == ["rerank", "embed", "chat"]


def test_a_full_group_gives_up_its_own_member_and_max_loaded_then_takes_from_any() -> None:
    ups = [upstream("big-a", on_demand=True, last_used=5.0, group="big"),
           upstream("big-b", on_demand=True, state=S.STOPPED, group="big"),
           upstream("embed", on_demand=True, last_used=1.0),  # older, but outside the group
           upstream("small", on_demand=True, last_used=2.0, group="small")]
    limits = {"big": 1, "small": 1}
    assert r.choose_evictions(ups, None, {"big-b"}, group_limits=limits) == ["big-a"]
    assert r.choose_evictions(ups, 3, {"big-b"}, group_limits=limits) == ["big-a"]
    assert r.choose_evictions(ups, 2, {"big-b"}, group_limits=limits) == ["big-a", "embed"]
    assert r.choose_evictions(ups, None, {"big-b"}, group_limits={"big": 2}) == []
    busy = [replace(u, in_flight=1) if u.name == "big-a" else u for u in ups]
    assert r.choose_evictions(busy, None, {"big-b"}, group_limits=limits) is None  # though embed is idle
    assert r.full_group(ups, "big-b", limits, {"big-b"}) == "big"
    assert r.full_group(ups, "big-b", {"big": 2}, {"big-b"}) is None
    assert r.full_group(ups, "embed", limits, {"big-b"}) is None


def test_idle_expired_respects_ttl_in_flight_and_state() -> None:
    ups = [
        upstream("idle", idle_ttl_s=10, last_used=100.0),
        upstream("busy", idle_ttl_s=10, last_used=100.0, in_flight=1),
        upstream("fresh", idle_ttl_s=10, last_used=105.0),
        upstream("no-ttl", last_used=1.0),
        upstream("never-used", idle_ttl_s=10, last_used=0.0),
        upstream("stopped", idle_ttl_s=10, last_used=1.0, state=S.STOPPED),
    ]
    assert r.idle_expired(ups, now=110.0) == ["idle"]
    assert r.idle_expired(ups, now=115.0) == ["fresh", "idle"]


def test_loading_retry_after_is_what_is_left_of_the_learned_load_time() -> None:
    assert r.loading_retry_after(None, 5) == 5
    assert r.loading_retry_after(upstream("a"), 5) == 5  # never timed
    assert r.loading_retry_after(upstream("a", ready_in_s=12.2), 5) == 13
    assert r.loading_retry_after(upstream("a", ready_in_s=0.0), 5) == 1
    assert r.loading_retry_after(upstream("a", ready_in_s=900.0), 5) == 60


GIB = 1024 ** 3


def test_a_memory_budget_evicts_least_recently_used_idle_on_demand_instances_until_the_start_fits() -> None:
    ups = [
        upstream("old", on_demand=True, last_used=1.0, memory_bytes=3 * GIB),
        upstream("busy", on_demand=True, last_used=0.5, in_flight=1, memory_bytes=3 * GIB),
        upstream("new", on_demand=True, last_used=5.0, memory_bytes=1 * GIB),
        upstream("always-on", memory_bytes=2 * GIB),  # counts, never evicted
        upstream("gpu", on_demand=True, last_used=0.1, memory_pool="vram", memory_bytes=8 * GIB),  # other pool
        upstream("target", on_demand=True, state=S.STOPPED, memory_bytes=4 * GIB),
    ]
    # held with the target: 3 + 3 + 1 + 2 + 4 = 13 GiB of RAM
    assert r.choose_evictions(ups, None, {"target"}, budgets={"ram": 13 * GIB}) == []
    assert r.choose_evictions(ups, None, {"target"}, budgets={"ram": 12 * GIB}) == ["old"]
    assert r.choose_evictions(ups, None, {"target"}, budgets={"ram": 10 * GIB}) == ["old"]
    assert r.choose_evictions(ups, None, {"target"}, budgets={"ram": 9 * GIB}) == ["old", "new"]
    assert r.choose_evictions(ups, None, {"target"}, budgets={"ram": 8 * GIB}) is None  # busy would have to go
    assert r.choose_evictions(ups, None, {"target"}, budgets={"vram": 1 * GIB}) == []  # not the target's pool
    # max_loaded's victims count as gone before the budget is looked at
    assert r.choose_evictions(ups, 3, {"target"}, budgets={"ram": 10 * GIB}) == ["gpu", "old"]
    assert r.choose_evictions(ups, 3, {"target"}, budgets={"ram": 9 * GIB}) == ["gpu", "old", "new"]
    assert r.over_budget(ups, "target", {"ram": 12 * GIB}, {"target"}) == ("ram", 13 * GIB, 12 * GIB)
    assert r.over_budget(ups, "target", {"ram": 13 * GIB}, {"target"}) is None
    assert r.over_budget(ups, "target", {"vram": GIB}, {"target"}) is None  # not the target's pool


def test_a_memory_budget_protects_pinned_awaited_and_young_instances_and_says_when_nothing_ever_fits() -> None:
    ups = [
        upstream("pinned", on_demand=True, pinned=True, last_used=0.1, memory_bytes=2 * GIB),
        upstream("awaited", on_demand=True, last_used=0.2, memory_bytes=2 * GIB),
        upstream("young", on_demand=True, last_used=0.3, up_for_s=1.0, min_residency_s=60.0, memory_bytes=2 * GIB),
        upstream("idle", on_demand=True, last_used=9.0, memory_bytes=2 * GIB),
        upstream("always-on", memory_bytes=1 * GIB),
        upstream("target", on_demand=True, state=S.STOPPED, memory_bytes=3 * GIB),
    ]
    budgets = {"ram": 10 * GIB}  # 12 GiB with the target
    assert r.choose_evictions(ups, None, {"target"}, {"awaited"}, budgets=budgets) == ["idle"]
    assert r.choose_evictions(ups, None, {"target"}, {"awaited"}, budgets={"ram": 9 * GIB}) is None
    assert r.never_fits(ups, "target", {"ram": 9 * GIB}) is None  # waiting can make room
    # pinned + always-on (3 GiB) are never evicted: a target of 3 GiB fits 6 GiB, never 5
    assert r.never_fits(ups, "target", {"ram": 6 * GIB}) is None
    assert r.never_fits(ups, "target", {"ram": 5 * GIB}) == ("ram", 3 * GIB, 3 * GIB, 5 * GIB)
    assert r.never_fits(ups, "target", {"vram": GIB}) is None  # no budget for its pool
