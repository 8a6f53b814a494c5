"""Ollama's API in OpenAI terms (gateway.ollama): requests one way, answers and streams the other."""

from __future__ import annotations

import json

import pytest

from llama_orchestrator.gateway import ollama
from llama_orchestrator.gguf_file import GgufFacts


def test_a_chat_request_becomes_openais_with_options_format_tools_and_images() -> None:
    body = {
        "model": "qwen", "format": {"type": "object"}, "think": False,
        "options": {"temperature": 0.2, "num_predict": 64, "num_ctx": 8192, "top_k": 20, "stop": ["\n"]},
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        "messages": [
            {"role": "user", "content": "what is this?", "images": ["aGk="]},
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "weather",
                                                                              "arguments": {"city": "Brno"}}}]},
            {"role": "tool", "content": "12 C", "tool_name": "weather"},
        ],
    }
    out = ollama.chat_request(body)
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}  # Ollama streams by default
    assert (out["temperature"], out["max_tokens"], out["top_k"], out["stop"]) == (0.2, 64, 20, ["\n"])
    assert "num_ctx" not in out and "options" not in out  # a load-time option: the instance's config
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "format",
                                                                             "schema": {"type": "object"}}}
    assert out["chat_template_kwargs"] == {"enable_thinking": False} and out["tools"] == body["tools"]
    user, assistant, tool = out["messages"]
    assert user["content"] == [{"type": "text", "text": "what is this?"},
                               {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,aGk="}}]
    [call] = assistant["tool_calls"]
    assert call["type"] == "function" and json.loads(call["function"]["arguments"]) == {"city": "Brno"}
    assert tool["tool_call_id"] == call["id"] and tool["name"] == "weather"


def test_generate_uses_the_chat_template_unless_raw_and_refuses_what_it_cannot_translate() -> None:
    path, out = ollama.generate_request({"model": "m", "prompt": "hi", "system": "be brief", "stream": False,
                                         "format": "json"})
    assert path == "/v1/chat/completions" and out["messages"] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert out["stream"] is False and "stream_options" not in out and out["response_format"] == {"type": "json_object"}
    path, out = ollama.generate_request({"model": "m", "prompt": "hi", "raw": True})
    assert path == "/v1/completions" and out["prompt"] == "hi"
    path, out = ollama.generate_request({"model": "m", "prompt": "def f(", "suffix": "    return x",
                                         "options": {"num_predict": 8, "temperature": 0}})
    assert path == "/infill" and (out["input_prefix"], out["input_suffix"]) == ("def f(", "    return x")
    assert (out["max_tokens"], out["temperature"], out["stream"]) == (8, 0, True)
    with pytest.raises(ollama.BadOllamaRequest, match="suffix must be a string"):
        ollama.generate_request({"model": "m", "prompt": "def f(", "suffix": 5})
    with pytest.raises(ollama.BadOllamaRequest, match="messages must be a list"):
        ollama.chat_request({"model": "m", "messages": "hi"})


def test_llama_cpps_own_answers_from_infill_become_ollama_objects_too() -> None:
    stream = ollama.ChatStream("coder", "response")
    out = stream.feed({"index": 0, "content": "x, ", "stop": False})
    out += stream.feed({"index": 0, "content": "y", "stop": False})
    out += stream.feed({"content": "", "stop": True, "stop_type": "limit", "tokens_predicted": 2,
                        "tokens_evaluated": 16, "timings": {"prompt_ms": 4.0, "predicted_ms": 1.5}})
    out += stream.finish()
    assert [o["response"] for o in out] == ["x, ", "y", ""]
    assert out[-1]["done"] and out[-1]["done_reason"] == "length"
    assert (out[-1]["prompt_eval_count"], out[-1]["eval_count"], out[-1]["eval_duration"]) == (16, 2, 1_500_000)
    whole = ollama.answer("coder", "response", {"content": "x, y", "stop": True, "stop_type": "eos",
                                                "tokens_predicted": 3, "tokens_evaluated": 9}, 0.0)
    assert (whole["response"], whole["done_reason"], whole["eval_count"]) == ("x, y", "stop", 3)
    assert ollama.openai_shape({"error": {"message": "no"}}) == {"error": {"message": "no"}}  # not an answer


def test_a_stream_becomes_ollama_lines_with_tool_calls_whole_and_the_counts_last() -> None:
    stream = ollama.ChatStream("qwen", "message")
    out = stream.feed({"choices": [{"delta": {"role": "assistant", "content": None}}]})
    out += stream.feed({"choices": [{"delta": {"reasoning_content": "hmm"}}]})
    out += stream.feed({"choices": [{"delta": {"content": "Hel"}}]})
    out += stream.feed({"choices": [{"delta": {"tool_calls": [
        {"index": 0, "id": "c1", "function": {"name": "weather", "arguments": '{"ci'}}]}}]})
    out += stream.feed({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Brno"}'}}]},
                                     "finish_reason": "tool_calls"}]})
    out += stream.feed({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4},
                        "timings": {"prompt_ms": 1.5, "predicted_ms": 2.0}})
    out += stream.finish()
    assert [o["message"].get("thinking") for o in out[:1]] == ["hmm"]
    assert [o["message"]["content"] for o in out[:2]] == ["", "Hel"]
    assert out[2]["message"]["tool_calls"] == [{"function": {"name": "weather", "arguments": {"city": "Brno"}}}]
    last = out[-1]
    assert last["done"] is True and last["done_reason"] == "stop" and len(out) == 4
    assert (last["prompt_eval_count"], last["eval_count"]) == (9, 4)
    assert (last["prompt_eval_duration"], last["eval_duration"]) == (1_500_000, 2_000_000)


def test_whole_answers_and_embeddings() -> None:
    completion = {"choices": [{"finish_reason": "length", "message": {"role": "assistant", "content": "yes"}}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    chat = ollama.answer("m", "message", completion, 0.0)
    assert chat["message"] == {"role": "assistant", "content": "yes"} and chat["done_reason"] == "length"
    text = ollama.answer("m", "response", {"choices": [{"text": "ok", "finish_reason": "stop"}]}, 0.0)
    assert text["response"] == "ok" and text["done"] is True
    result = {"data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}],
              "usage": {"prompt_tokens": 4}}
    assert ollama.embed_answer("m", result, False, 0.0)["embeddings"] == [[1.0], [2.0]]
    assert ollama.embed_answer("m", result, True, 0.0) == {"embedding": [1.0]}


def test_show_reports_what_the_running_llama_server_says() -> None:
    props = {"chat_template_caps": {"supports_tools": True}, "modalities": {"vision": True},
             "default_generation_settings": {"n_ctx": 4096}, "chat_template": "{{ messages }}"}
    shown = ollama.show("m", props)
    assert shown["capabilities"] == ["completion", "tools", "vision"]
    assert shown["model_info"]["llama.cpp.context_length"] == 4096 and shown["template"] == "{{ messages }}"
    assert ollama.show("m", None)["capabilities"] == ["completion"]  # not up: only what the gateway knows


def test_an_embedding_model_is_shown_capable_of_embedding_not_completion() -> None:
    """As Ollama tells them: the model file has a pooling type (whether the model is up or not)."""
    embedding = GgufFacts(architecture="nomic-bert", pooling_type=1)
    assert ollama.show("nomic", None, (), embedding)["capabilities"] == ["embedding"]
    assert ollama.show("nomic", {"modalities": {"vision": False}}, (), embedding)["capabilities"] == ["embedding"]
    assert ollama.show("q", None, (), GgufFacts(architecture="qwen2"))["capabilities"] == ["completion"]


def test_ps_says_when_the_idle_ttl_would_unload_a_model() -> None:
    from datetime import UTC, datetime

    from tests.unit.gateway.gateway_fakes import upstream

    from llama_orchestrator.core.states import InstanceState as S

    assert ollama.expires_at([upstream("pinned-up", idle_ttl_s=None)], 100.0) == ollama.NEVER
    soon = ollama.expires_at([upstream("a", idle_ttl_s=600, last_used=90.0),  # 590 s left
                              upstream("b", idle_ttl_s=60, last_used=95.0),  # 55 s left: the soonest
                              upstream("c", idle_ttl_s=1, last_used=0.0, state=S.STOPPED)], 100.0)
    left = (datetime.fromisoformat(soon.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()
    assert 50 < left <= 55


def test_a_listed_model_has_its_files_size_and_time_the_largest_and_latest_of_its_replicas() -> None:
    from tests.unit.gateway.gateway_fakes import upstream

    entry = ollama.model_entry("pair", [upstream("a", model_bytes=100, model_mtime=1_700_000_000.5),
                                        upstream("b", model_bytes=300, model_mtime=1_600_000_000.0)])
    assert (entry["size"], entry["modified_at"]) == (300, "2023-11-14T22:13:20.500000Z")
    assert ollama.model_entry("x")["size"] == 0 and ollama.model_entry("x")["modified_at"].endswith("Z")  # unknown
    shown = ollama.show("pair", None, [upstream("a", model_bytes=100, model_mtime=1_700_000_000.5)])
    assert shown["modified_at"] == "2023-11-14T22:13:20.500000Z"


def test_a_models_details_come_from_its_gguf_metadata_and_its_context_from_the_server_when_up() -> None:
    facts = GgufFacts(architecture="qwen2", name="Qwen2.5 7B", size_label="7.6B", file_type=15, context_length=32768)
    details = ollama.model_entry("q", (), facts)["details"]
    assert details == {"parent_model": "", "format": "gguf", "family": "qwen2", "families": ["qwen2"],
                       "parameter_size": "7.6B", "quantization_level": "Q4_K_M"}
    down = ollama.show("q", None, (), facts)["model_info"]
    assert down == {"general.architecture": "qwen2", "general.name": "Qwen2.5 7B", "general.size_label": "7.6B",
                    "general.file_type": 15, "qwen2.context_length": 32768}  # trained for, while it is down
    up = ollama.show("q", {"default_generation_settings": {"n_ctx": 4096}}, (), facts)["model_info"]
    assert up["qwen2.context_length"] == 4096  # up: what a request gets
    unknown = ollama.model_entry("x")["details"]
    assert (unknown["family"], unknown["families"], unknown["quantization_level"]) == ("", None, "")


def test_keepalive_comments_and_done_are_no_lines_and_an_error_event_is_ollamas_error() -> None:
    from llama_orchestrator.gateway.loopback import event_object
    from llama_orchestrator.gateway.ollama_routes import _translate

    stream = ollama.ChatStream("m", "message")
    assert event_object(b": loading model 'm' (3 s)") is None and event_object(b"data: [DONE]") is None
    assert event_object(b"data: not json") is None and event_object(b"data: [1, 2]") is None
    cut = event_object(b'event: error\ndata: {"error": {"message": "model m failed to start"}, "source": "gateway"}')
    assert cut is not None and _translate(cut, stream) == [{"error": "model m failed to start"}]
