"""An instance's request_filters: the body rewrite they make, and the fields they may not touch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llama_orchestrator.config.loader import load_fleet
from llama_orchestrator.config.models import RequestFilters
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.gateway.request_filters import rewriter


def test_stripped_fields_go_set_ones_replace_and_the_rest_stays() -> None:
    rewrite = rewriter(RequestFilters(strip_params=["top_p", "absent"], set_params={"temperature": 0.6,
                                                                                    "stop": ["</s>"]}))
    assert rewrite is not None
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "héllo"}], "temperature": 2,
                       "top_p": 0.1, "stream": True}).encode()
    assert json.loads(rewrite(body, "m")) == {"model": "m", "messages": [{"role": "user", "content": "héllo"}],
                                         "temperature": 0.6, "stream": True, "stop": ["</s>"]}


def test_what_orjson_refuses_keeps_its_nan_and_what_is_not_an_object_goes_as_it_came() -> None:
    rewrite = rewriter(RequestFilters(set_params={"temperature": 0.6}))
    assert rewrite is not None
    assert rewrite(b'{"model": "m", "logit_bias": NaN}', "m") == b'{"model":"m","logit_bias":NaN,"temperature":0.6}'
    for body in (b"[1, 2]", b"not json", b"\xff"):
        assert rewrite(body, "m") == body


def test_no_filters_no_rewrite() -> None:
    assert rewriter(RequestFilters()) is None
    assert rewriter(RequestFilters(), {"quiet": RequestFilters()}) is None


def test_a_variant_applies_its_filters_after_the_instances_and_only_to_requests_naming_it() -> None:
    base = RequestFilters(strip_params=["top_k"], set_params={"temperature": 0.7, "top_p": 0.8})
    variants = {
        "think": RequestFilters(set_params={"chat_template_kwargs": {"enable_thinking": True}, "temperature": 0.6}),
        "greedy": RequestFilters(strip_params=["top_p"], set_params={"temperature": 0}),
        "plain": RequestFilters(),
    }
    rewrite = rewriter(base, variants)
    assert rewrite is not None
    body = json.dumps({"model": "x", "top_k": 5, "top_p": 0.1, "temperature": 2}).encode()
    assert json.loads(rewrite(body, "qwen")) == {"model": "x", "temperature": 0.7, "top_p": 0.8}
    assert json.loads(rewrite(body, "think")) == {
        "model": "x", "temperature": 0.6, "top_p": 0.8, "chat_template_kwargs": {"enable_thinking": True}}
    assert json.loads(rewrite(body, "greedy")) == {"model": "x", "temperature": 0}  # its strip after the set
    assert json.loads(rewrite(body, "plain")) == {"model": "x", "temperature": 0.7, "top_p": 0.8}
    only_variant = rewriter(RequestFilters(), {"think": variants["think"]})
    assert only_variant is not None and only_variant(body, "qwen") is body  # no filters: not even parsed


@pytest.mark.parametrize("filters", [{"strip_params": ["model"]}, {"set_params": {"stream": False}}])
def test_the_fields_the_gateway_routes_by_cannot_be_filtered(tmp_path: Path, filters: dict[str, object]) -> None:
    paths = HomePaths(tmp_path)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    config = paths.instance_config("a")
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"name": "a", "model": {"path": str(model)}, "server": {"port": 8001},
                                  "request_filters": filters}))
    fleet = load_fleet(paths, which=lambda _: "/usr/bin/llama-server")
    [problem] = fleet.errors
    assert problem.field == f"request_filters.{next(iter(filters))}"
    assert "the gateway routes requests by it" in problem.message
