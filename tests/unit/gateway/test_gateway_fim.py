"""gateway.fim: an OpenAI completion with a suffix as llama.cpp's /infill, and its answer back."""

from __future__ import annotations

import pytest

from llama_orchestrator.gateway import fim
from llama_orchestrator.gateway.errors import BadRequest


def test_only_a_completion_with_a_suffix_goes_to_infill() -> None:
    assert fim.infill_body({"model": "m", "prompt": "def f("}) is None
    assert fim.infill_body({"model": "m", "prompt": "def f(", "suffix": ""}) is None
    body = fim.infill_body({"model": "m", "prompt": "def f(", "suffix": "    return x", "max_tokens": 8,
                            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}, "n": 1})
    assert body == {"model": "m", "input_prefix": "def f(", "input_suffix": "    return x", "max_tokens": 8,
                    "temperature": 0, "stream": True}
    with pytest.raises(BadRequest, match="must be strings"):
        fim.infill_body({"model": "m", "prompt": ["a", "b"], "suffix": ")"})
    assert fim.wants_infill(b'{"prompt": "x", "suffix": ")"}') and not fim.wants_infill(b'{"prompt": "x"}')


def test_llama_cpps_answer_becomes_an_openai_text_completion() -> None:
    chunk = fim.completion({"index": 0, "content": "x, ", "stop": False}, "coder", "cmpl-1", 1_700_000_000)
    assert chunk == {"id": "cmpl-1", "object": "text_completion", "created": 1_700_000_000, "model": "coder",
                     "choices": [{"text": "x, ", "index": 0, "logprobs": None, "finish_reason": None}]}
    last = fim.completion({"content": "y", "stop": True, "stop_type": "limit", "tokens_predicted": 2,
                           "tokens_evaluated": 16}, "coder", "cmpl-1", 1_700_000_000)
    assert last["choices"][0] == {"text": "y", "index": 0, "logprobs": None, "finish_reason": "length"}
    assert last["usage"] == {"prompt_tokens": 16, "completion_tokens": 2, "total_tokens": 18}
    eos = fim.completion({"content": "", "stop": True, "stop_type": "eos"}, "coder", "cmpl-1", 0)
    assert eos["choices"][0]["finish_reason"] == "stop"
