"""The gateway's routes: which paths it serves, and how.

    GET  /health                               gateway liveness (public)
    GET  /v1/models, /models                   every instance and alias, with its state
    GET  /v1/models/<id>                       one of them (404 in the OpenAI shape lists the others)
    POST /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/rerank, /v1/responses,
         /v1/messages (Anthropic), /v1/messages/count_tokens, /v1/chat/completions/input_tokens,
         /v1/responses/input_tokens, /v1/chat/completions/control, /v1/audio/transcriptions (a
         form, by its `model` field), /infill, /completion,
         /embedding, /tokenize, /detokenize, /apply-template (and the unversioned and `reranking`
         spellings llama-server accepts)   routed by `model` (without one: to gateway.default_model,
                                           else to the only model)
    POST /v1/streams/lookup, GET|DELETE /v1/stream?conv_id=   a named conversation's stream, resumed
                                               or stopped at the instance it was routed to (gateway.resumable)
    any  /instances/<name>/<route>             any route of one instance's llama-server (health,
                                               slots, props, lora-adapters, its web UI…: gateway.native)
    GET  /metrics                              Prometheus text (gateway + relabelled children)
    POST /models/load, /models/unload          llama-server router mode's model API (gateway.model_control),
    GET  /models/sse                           its stream of status changes,
    GET  /props, /slots, /metrics ?model=<id>  and its per-model reads (`/props` alone: the router's own)
    GET  /api/version, /api/tags, /api/ps      Ollama's API, translated to the routes above (gateway.ollama_routes)
    POST /api/chat, /api/generate, /api/embed, /api/embeddings, /api/show
    GET  /                                     "Ollama is running" (public), as Ollama's clients probe it;
                                               any other /api/ path: 404 in Ollama's shape (not served)
    OPTIONS  any                               CORS preflight for `gateway.cors_origins` (gateway.cors)

Plain requests to INFERENCE_PATHS may take the front door's fast lane (gateway.frontdoor); every
other route is aiohttp's (`Gateway._dispatch`).
"""

from __future__ import annotations

import ipaddress

INFERENCE_PATHS = (
    "/v1/chat/completions", "/chat/completions", "/v1/completions", "/completions",
    "/v1/embeddings", "/embeddings", "/v1/rerank", "/rerank", "/v1/reranking", "/reranking",
    "/v1/responses", "/responses",  # OpenAI's Responses API, as llama-server serves it
    "/v1/messages", "/v1/messages/count_tokens",  # Anthropic's Messages API, likewise
    # counting a request's prompt tokens, and ending a running completion's reasoning early
    "/v1/chat/completions/input_tokens", "/chat/completions/input_tokens",
    "/v1/responses/input_tokens", "/responses/input_tokens", "/v1/chat/completions/control",
    "/v1/audio/transcriptions", "/audio/transcriptions",  # a form: its `model` field routes it
    "/infill",  # llama.cpp's code infill
    # llama.cpp's native spellings, which its own clients use (SillyTavern's llama.cpp mode, its old web UI)
    "/completion", "/embedding", "/tokenize", "/detokenize", "/apply-template",
)
PUBLIC_NATIVE = frozenset({"health", ""})  # as in llama-server: health, and the web UI's page (it asks for keys)
MODEL_PREFIXES = ("/v1/models/", "/models/")  # + an id: one entry of the model list
SERVED = ("/v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/rerank, /v1/responses, "
          "/v1/messages, /infill, /completion, /tokenize, /models/load, /models/unload, /models/sse, "
          "/props, /slots, /v1/stream, /v1/streams/lookup, /instances/<name>/<route>, "
          "Ollama's /api/chat, /api/generate, /api/embed, /api/tags, "
          "/metrics and /health")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def with_slash(raw_path: str, raw_query: str) -> str:
    """A path and query, as the client sent them, with a slash after the path."""
    return f"{raw_path}/?{raw_query}" if raw_query else f"{raw_path}/"
