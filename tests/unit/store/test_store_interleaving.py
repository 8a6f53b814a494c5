"""Randomised: interleaved writes across three instances end in the right rows and event order."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.store import EventRecord, InstanceRecord, Store

NAMES = ("a", "b", "c")

save_ops = st.tuples(
    st.just("save"), st.sampled_from(NAMES), st.sampled_from(list(InstanceState)),
    st.one_of(st.none(), st.integers(0, 2**31)), st.integers(0, 5),
)
transition_ops = st.tuples(
    st.just("transition"), st.sampled_from(NAMES), st.sampled_from(list(InstanceState)),
    st.none(), st.integers(0, 5),
)
delete_ops = st.tuples(st.just("delete"), st.sampled_from(NAMES), st.just(InstanceState.STOPPED),
                       st.none(), st.just(0))
flush_ops = st.tuples(st.just("flush"), st.just(""), st.just(InstanceState.STOPPED), st.none(), st.just(0))
operations = st.lists(st.one_of(save_ops, transition_ops, delete_ops, flush_ops), max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_interleaved_writes_match_a_plain_model(ops: list[tuple[str, str, InstanceState, int | None, int]]) -> None:
    rows: dict[str, InstanceRecord] = {}
    events: list[EventRecord] = []
    previous: dict[str, str | None] = dict.fromkeys(NAMES)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        with Store.open(path) as store:
            for step, (kind, name, state, pid, restarts) in enumerate(ops):
                at = float(step)
                if kind == "save":
                    record = InstanceRecord(name=name, state=state, updated_at=at, pid=pid, restarts=restarts)
                    if step % 2:
                        record = replace(record, desired="up", last_exit_code=0)
                    store.save_instance(record)
                    rows[name] = record
                elif kind == "transition":
                    event_id = store.record_transition(name, previous[name], state, f"step {step}", at)
                    assert not events or event_id > events[-1].id
                    events.append(EventRecord(event_id, name, previous[name], str(state), f"step {step}", at))
                    previous[name] = str(state)
                elif kind == "delete":
                    store.delete_instance(name)
                    rows.pop(name, None)
                else:
                    assert store.flush(10)
                # Reads agree with the model at every step, landed or not.
                assert store.get_instance(NAMES[step % 3]) == rows.get(NAMES[step % 3])
            assert store.list_instances() == [rows[n] for n in sorted(rows)]
            assert store.list_events() == events
            assert store.flush(10)
            assert store.health.ok
        with Store.open(path) as reopened:
            assert reopened.list_instances() == [rows[n] for n in sorted(rows)]
            assert reopened.list_events() == events
            for name in NAMES:
                assert reopened.list_events(instance=name) == [e for e in events if e.instance == name]
            assert reopened.last_event_id() == (events[-1].id if events else 0)
