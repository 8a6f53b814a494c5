"""Key parsing and matching, the OpenAI error shape, and the Prometheus text."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from multidict import CIMultiDict
from tests.unit.gateway.gateway_fakes import upstream

from llama_orchestrator.config.models import RequestFilters
from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.core.states import InstanceState as S
from llama_orchestrator.gateway import errors
from llama_orchestrator.gateway.auth import Keyring, keyring_for, load_keyring, parse_keys_file, presented_key
from llama_orchestrator.gateway.catalog import (
    available_models,
    load_status,
    model_list,
    own_names,
    served_names,
    visible_models,
)
from llama_orchestrator.gateway.metrics import UNKNOWN_MODEL, GatewayMetrics, model_label, relabel_children
from llama_orchestrator.gateway.request_filters import rewriter
from llama_orchestrator.gateway.routes import is_loopback


def test_keys_file_lines_comments_and_scopes() -> None:
    keys = parse_keys_file("# admin\nk1\n\nk2  gpt, tiny # scoped\n")
    assert [(k.secret, k.models) for k in keys] == [(b"k1", None), (b"k2", frozenset({"gpt", "tiny"}))]
    assert keys[1].allows({"tiny"}) and not keys[1].allows({"other"})


def test_load_keyring_from_env_and_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("filekey tiny\n")
    ring = load_keyring("GW_KEYS", str(path), {"GW_KEYS": "a, b,"})
    assert [k.secret for k in ring.keys] == [b"a", b"b", b"filekey"]
    assert ring.match("b") is ring.keys[1]
    assert ring.match("nope") is None and ring.match("") is None and ring.match(None) is None


def test_configured_but_missing_key_sources_are_errors(tmp_path: Path) -> None:
    with pytest.raises(errors.GatewayStartError, match="GW_KEYS"):
        load_keyring("GW_KEYS", None, {})
    with pytest.raises(errors.GatewayStartError, match="cannot read"):
        load_keyring(None, str(tmp_path / "absent"), {})
    assert not Keyring().enabled


def test_keys_that_cannot_be_read_fail_closed_unless_keys_were_read_before(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    config = GatewayConfig(host="0.0.0.0", api_keys_file=str(path))
    refusing = keyring_for(config)  # nothing read before (a start): refuse everything, saying why
    assert refusing.enabled and refusing.unreadable is not None
    assert refusing.match("anything") is None and refusing.match(None) is None
    assert f"cannot read gateway.api_keys_file '{path}'" in refusing.refusal
    assert "keys could not be read" in refusing.refusal and "llama-orch up" in refusing.refusal
    assert keyring_for(config, running=refusing).unreadable == refusing.unreadable
    assert keyring_for(config, running=Keyring()).enabled  # an open gateway closes
    read_before = Keyring(tuple(parse_keys_file("k\n")))
    with pytest.raises(errors.KeysUnreadable, match="cannot read"):  # the running keys stay
        keyring_for(config, running=read_before)
    path.write_text("k2 tiny\n")
    ring = keyring_for(config, running=refusing)
    assert ring.unreadable is None and ring.match("k2") is ring.keys[0] and ring.match("k") is None


def test_a_keys_file_saved_with_a_bom_and_crlf_keeps_its_first_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_bytes(b"\xef\xbb\xbffirstkey\r\ncrlfkey tiny\r\n")  # Notepad's UTF-8
    ring = load_keyring(None, str(path))
    first, scoped = ring.match("firstkey"), ring.match("crlfkey")
    assert first is not None and first.models is None
    assert scoped is not None and scoped.models == {"tiny"}


def test_presented_key_from_bearer_or_x_api_key() -> None:
    assert presented_key(CIMultiDict({"Authorization": "Bearer abc"})) == "abc"
    assert presented_key({"authorization": "bearer  abc "}) == "abc"  # gateway.http1 lowercases names
    assert presented_key(CIMultiDict({"X-Api-Key": "xyz"})) == "xyz"
    assert presented_key({"x-api-key": "xyz"}) == "xyz"
    assert presented_key(CIMultiDict({"Authorization": "Basic Zm9v"})) is None
    assert presented_key({}) is None


def test_error_shape_and_headers() -> None:
    resp = errors.to_response(errors.ModelNotFound("nope", ["a", "b"]))
    assert resp.status == 404
    assert resp.headers[errors.SOURCE_HEADER] == "gateway"
    assert isinstance(resp.body, bytes)
    body = json.loads(resp.body)
    assert body["source"] == "gateway"
    assert body["error"]["code"] == "model_not_found" and body["error"]["param"] == "model"
    assert "a, b" in body["error"]["message"]
    busy = errors.to_response(errors.Overloaded("full", retry_after_s=1))
    assert busy.status == 429 and busy.headers["Retry-After"] == "1"
    assert errors.to_response(ValueError("secret detail")).status == 500


def test_sse_error_event_is_one_complete_event() -> None:
    event = errors.sse_error_event("cut")
    assert event.startswith(b"event: error\ndata: ") and event.endswith(b"\n\n")
    assert json.loads(event.split(b"data: ", 1)[1])["error"]["message"] == "cut"


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")


def test_model_list_has_instances_and_aliases() -> None:
    ups = [upstream("a", "chat"), upstream("b", "chat", state=S.STARTING), upstream("e", "e")]
    ids = [(m["id"], m["state"], m["owned_by"]) for m in model_list(ups)]
    assert ids == [("a", "ready", "llama-orchestrator"), ("b", "starting", "llama-orchestrator"),
                   ("e", "ready", "llama-orchestrator"), ("chat", "ready", "llama-orchestrator")]
    scoped = parse_keys_file("k chat\n")[0]
    assert [m["id"] for m in model_list(ups, scoped)] == ["a", "b", "chat"]


@pytest.mark.parametrize(("state", "on_demand", "restarting", "routable"), [
    (S.READY, False, False, True),
    (S.STOPPED, True, False, True),  # a request starts it, then it is served
    (S.STOPPING, True, False, True),  # started again once it has exited
    (S.STARTING, False, False, True), (S.BACKOFF, False, False, True),  # a request waits for it
    (S.STOPPING, False, True, True),  # restarting: likewise
    (S.STOPPED, False, False, False),  # a request gets 503: only `llama-orch up` starts it
    (S.FAILED, True, False, False), (S.UNHEALTHY, True, False, False),
])
def test_a_listed_model_is_routable_when_a_request_for_it_is_served(
    state: S, on_demand: bool, restarting: bool, routable: bool
) -> None:
    """`routable` says whether a request for the id is served (now, or once the start it waits
    for or makes is over), as the gateway admits it; `state` still says where the model is."""
    one = upstream("a", "chat", state=state, on_demand=on_demand, restarting=restarting)
    listed = {m["id"]: m for m in model_list([one])}
    assert (listed["a"]["routable"], listed["a"]["state"]) == (routable, state.value)
    assert (listed["chat"]["routable"], listed["chat"]["state"]) == (routable, state.value)
    # beside a replica that serves no request, an alias is as routable as `a`, and keeps a's state
    pair = {m["id"]: m for m in model_list([one, upstream("b", "chat", state=S.STOPPED)])}
    assert (pair["chat"]["routable"], pair["chat"]["state"]) == (routable, state.value)


@pytest.mark.parametrize(("state", "restarting", "value"), [
    (S.READY, False, "loaded"), (S.UNHEALTHY, False, "loaded"),
    (S.STOPPING, False, "loaded"),  # still holds its model until it exits
    (S.STOPPING, True, "loading"), (S.STARTING, False, "loading"), (S.BACKOFF, False, "loading"),
    (S.RECONCILING, False, "loading"), (S.STOPPED, False, "unloaded"),
])
def test_each_state_is_the_status_llama_servers_router_reports(state: S, restarting: bool, value: str) -> None:
    assert load_status([upstream("a", state=state, restarting=restarting)]) == {"value": value}


def test_a_model_is_as_loaded_as_its_most_loaded_instance_and_failed_only_when_all_failed() -> None:
    assert load_status([upstream("a", state=S.STOPPED), upstream("b", state=S.READY)]) == {"value": "loaded"}
    assert load_status([upstream("a", state=S.FAILED), upstream("b", state=S.STARTING)]) == {"value": "loading"}
    assert load_status([upstream("a", state=S.FAILED), upstream("b", state=S.STOPPED)]) == {"value": "unloaded"}
    assert load_status([upstream("a", state=S.FAILED)]) == {"value": "unloaded", "failed": True}
    listed = {m["id"]: m["status"] for m in model_list([upstream("a", "chat", state=S.FAILED),
                                                        upstream("b", "chat", state=S.READY)])}
    assert listed == {"a": {"value": "unloaded", "failed": True}, "b": {"value": "loaded"},
                      "chat": {"value": "loaded"}}


def test_further_aliases_route_list_and_scope_like_the_alias() -> None:
    ups = [upstream("a", "coder", aliases=("gpt-4o-mini", "shared")), upstream("b", "b", aliases=("shared",))]
    assert [u.name for u in ups if u.serves("gpt-4o-mini")] == ["a"]
    assert [u.name for u in ups if u.serves("shared")] == ["a", "b"]
    assert available_models(ups) == ["a", "b", "coder", "gpt-4o-mini", "shared"]
    listed = {m["id"]: m for m in model_list(ups)}
    assert list(listed) == ["a", "b", "coder", "gpt-4o-mini", "shared"]
    assert listed["a"]["aliases"] == ["gpt-4o-mini", "shared"] and listed["b"]["aliases"] == ["shared"]
    assert listed["shared"]["instances"] == ["a", "b"] and listed["gpt-4o-mini"]["instances"] == ["a"]
    # a key scoped to one of a's names reaches a by any of them (and, as with a shared alias, the
    # replicas a shares a name with), but not b by b's own name
    scoped = parse_keys_file("k coder\n")[0]
    assert scoped.allows(served_names(ups, "gpt-4o-mini")) and not scoped.allows(served_names(ups, "b"))
    assert [m["id"] for m in model_list(ups, scoped)] == ["a", "coder", "gpt-4o-mini", "shared"]


def test_a_key_for_a_variant_reaches_only_the_variant_and_one_for_the_instance_all_of_it() -> None:
    variants = {"gemma-long": RequestFilters(set_params={"max_tokens": 40})}
    gemma = upstream("gemma", "g", aliases=("gemma-2", "gemma-long"), variants=("gemma-long",),
                     rewrite_body=rewriter(RequestFilters(), variants))
    ups = [gemma, upstream("tiny")]
    assert own_names(gemma) == {"gemma", "g", "gemma-2"} and own_names(ups[1]) == {"tiny"}
    variant, alias = parse_keys_file("v gemma-long\n")[0], parse_keys_file("a gemma-2\n")[0]
    assert [variant.allows(served_names(ups, m)) for m in ("gemma-long", "gemma", "g", "gemma-2", "tiny")] == [
        True, False, False, False, False]
    assert [alias.allows(served_names(ups, m)) for m in ("gemma-long", "gemma", "g", "gemma-2", "tiny")] == [
        True, True, True, True, False]
    assert [m["id"] for m in model_list(ups, variant)] == ["gemma-long"]
    assert [m["id"] for m in model_list(ups, alias)] == ["gemma", "g", "gemma-2", "gemma-long"]
    assert visible_models(ups, variant) == ["gemma-long"]
    assert visible_models(ups, alias) == ["g", "gemma", "gemma-2", "gemma-long"]


def test_requests_for_models_not_served_share_one_metrics_label() -> None:
    m = GatewayMetrics()
    for name in ("nope-1", "nope-2"):
        m.observe(model_label(name, errors.ModelNotFound(name, [])), "/v1/chat/completions", 404, "gateway", 0.001)
    m.observe(model_label("tiny", errors.Overloaded("full")), "/v1/chat/completions", 429, "gateway", 0.001)
    assert model_label("tiny") == "tiny"
    assert set(m.requests) == {(UNKNOWN_MODEL, "/v1/chat/completions", "404"), ("tiny", "/v1/chat/completions", "429")}
    assert f'llama_orch_gateway_requests_total{{model="{UNKNOWN_MODEL}",route="/v1/chat/completions",status="404"}} 2' \
        in m.render([])


def test_metrics_text_histograms_states_and_relabelled_children() -> None:
    m = GatewayMetrics()
    m.observe("tiny", "/v1/chat/completions", 200, "upstream", 0.03)
    m.observe("tiny", "/v1/chat/completions", 503, "gateway", 0.001)
    m.observe_ttfb("tiny", 0.002)
    child = (
        "# HELP llamacpp:requests_processing x\n# TYPE llamacpp:requests_processing gauge\n"
        "llamacpp:requests_processing 2\n"
    )
    a, b = upstream("a", "tiny", metrics=True, restarts=3), upstream("b", "tiny", metrics=True)
    text = m.render([a, b], [(a, child), (b, child)])
    assert 'llama_orch_gateway_requests_total{model="tiny",route="/v1/chat/completions",status="503"} 1' in text
    assert 'llama_orch_gateway_errors_total{model="tiny",source="gateway"} 1' in text
    assert 'llama_orch_gateway_request_duration_seconds_bucket{model="tiny",le="0.05"} 2' in text
    assert 'llama_orch_gateway_request_duration_seconds_count{model="tiny"} 2' in text
    assert 'llama_orch_gateway_time_to_first_byte_seconds_bucket{model="tiny",le="+Inf"} 1' in text
    assert 'llama_orch_instance_state{instance="a",state="ready"} 1' in text
    assert 'llama_orch_instance_restarts_total{instance="a"} 3' in text
    # a user's start after a stop sets it back to 0 (as `docker start` does): a gauge, not a counter
    assert "# TYPE llama_orch_instance_restarts_total gauge" in text
    assert ("# HELP llama_orch_instance_restarts_total Restarts after crashes or failed health checks in the "
            "instance's current run, since it was last started by a user or a request.") in text
    assert text.count("# TYPE llamacpp:requests_processing gauge") == 1
    assert 'llamacpp:requests_processing{instance="b",model="tiny"} 2' in text
    assert "llama_orch_instance_budget_memory_bytes" not in text  # no memory budget
    budgeted = m.render([replace(a, memory_bytes=3 << 30), replace(b, memory_pool="vram", memory_bytes=1 << 30)])
    assert 'llama_orch_instance_budget_memory_bytes{instance="a",pool="ram"} 3221225472' in budgeted
    assert 'llama_orch_instance_budget_memory_bytes{instance="b",pool="vram"} 1073741824' in budgeted


def test_relabel_keeps_existing_labels() -> None:
    lines = relabel_children([(upstream("a"), 'foo_total{slot="0"} 4\nbar 1.5e3\n')])
    assert lines == ['foo_total{instance="a",model="a",slot="0"} 4', 'bar{instance="a",model="a"} 1.5e3']


def test_request_bodies_parse_fast_and_as_leniently_as_llama_server() -> None:
    import pytest

    from llama_orchestrator.gateway.catalog import read_json

    assert read_json(b'{"model": "m", "stream": true}') == {"model": "m", "stream": True}
    assert read_json(b'{"model": "m", "seed": 123456789012345678901234567890}')["model"] == "m"  # type: ignore[index]
    assert str(read_json(b'{"temperature": NaN}')) == "{'temperature': nan}"  # orjson refuses; json takes it
    with pytest.raises(ValueError):
        read_json(b'{"model": ')
