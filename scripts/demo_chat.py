"""The demo's client: one streaming chat completion through the gateway with the OpenAI SDK.

Falls back to the instance's own port when the gateway is disabled, so the demo still shows a
real answer; the fallback is printed, never silent.
"""

from __future__ import annotations

import sys
import time

from openai import OpenAI

from llama_orchestrator.config.paths import resolve_home
from llama_orchestrator.daemon.client import DaemonClient


def main() -> None:
    status = DaemonClient.connect(resolve_home(None)).status()
    gemma = next(s for s in status.instances if s.name == "gemma")
    if status.gateway.address:
        base_url, via = f"{status.gateway.address}/v1", "the gateway"
    else:
        why = status.gateway.error or "not enabled in this build"
        base_url, via = f"http://{gemma.host}:{gemma.port}/v1", f"the instance port (gateway: {why})"
    client = OpenAI(base_url=base_url, api_key="not-needed-on-loopback")
    print(f"POST {base_url}/chat/completions  model={gemma.alias}  via {via}")
    started = time.monotonic()
    first = None
    tokens = 0
    stream = client.chat.completions.create(
        model=gemma.alias,
        messages=[{"role": "user", "content": "In one sentence: why run several local models behind one endpoint?"}],
        max_tokens=64,
        stream=True,
    )
    for chunk in stream:
        delta = chunk.choices[0].delta.content if chunk.choices else None
        if delta:
            first = first or time.monotonic()
            tokens += 1
            sys.stdout.write(delta)
            sys.stdout.flush()
    elapsed = time.monotonic() - started
    ttft = (first - started) if first else float("nan")
    print(f"\n[{tokens} chunks in {elapsed:.2f} s, first token after {ttft * 1000:.0f} ms]")
    if tokens == 0:
        sys.exit("the model streamed no text")


if __name__ == "__main__":
    main()
