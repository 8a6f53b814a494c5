"""Inference keys: where they come from, how a request presents one, what it may reach.

Keys come from the environment variable named by `gateway.api_keys_env` (comma-separated, all
models) and/or the file named by `gateway.api_keys_file`: one key per line, optionally followed
by whitespace and a comma-separated list of models (names or aliases) the key is limited to;
`#` starts a comment. Keys never come from argv.

A request presents a key as `Authorization: Bearer K` or `X-Api-Key: K` (like llama-server).
Every configured key is compared with `hmac.compare_digest`, all of them every time, so the
answer takes the same time whichever key (if any) matched.

Public without a key: `/health`, `/instances/<name>/health` and the web UI's page
`/instances/<name>/` (public in llama-server too; it asks for the key). Everything else, `/v1/models`
and `/metrics` included, needs a key once keys are configured (`/v1/models` then lists only the
models the key may use): model names are not public information on a shared host.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.gateway.errors import GatewayStartError
from llama_orchestrator.gateway.routes import is_loopback


@dataclass(frozen=True, slots=True)
class Key:
    secret: bytes
    models: frozenset[str] | None  # None: every model

    def allows(self, names: Iterable[str]) -> bool:
        return self.models is None or not self.models.isdisjoint(names)


@dataclass(frozen=True, slots=True)
class Keyring:
    keys: tuple[Key, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def match(self, presented: str | None) -> Key | None:
        """The key `presented` equals, compared in constant time against every key; else None."""
        given = (presented or "").encode()
        found: Key | None = None
        for key in self.keys:
            if hmac.compare_digest(key.secret, given) and found is None:
                found = key
        return found if given else None


def parse_keys_file(text: str, source: str = "api_keys_file") -> list[Key]:
    """Parse lines `key` or `key model1,model2`; `#` comments and blank lines are skipped."""
    keys: list[Key] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        models: frozenset[str] | None = None
        if len(parts) == 2:
            names = frozenset(m.strip() for m in parts[1].split(",") if m.strip())
            if not names:
                raise GatewayStartError(f"{source}:{number}: empty model list after the key")
            models = names
        keys.append(Key(parts[0].encode(), models))
    return keys


def parse_keys_env(value: str) -> list[Key]:
    return [Key(k.strip().encode(), None) for k in value.split(",") if k.strip()]


def load_keyring(
    api_keys_env: str | None, api_keys_file: str | None, environ: Mapping[str, str] | None = None
) -> Keyring:
    """Read every configured key; a configured source that is missing or empty is an error."""
    env = os.environ if environ is None else environ
    keys: list[Key] = []
    if api_keys_env:
        value = env.get(api_keys_env, "")
        parsed = parse_keys_env(value)
        if not parsed:
            raise GatewayStartError(
                f"gateway.api_keys_env names {api_keys_env!r}, but that variable is unset or holds no key"
            )
        keys += parsed
    if api_keys_file:
        path = Path(api_keys_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise GatewayStartError(f"cannot read gateway.api_keys_file {str(path)!r}: {exc.strerror}") from exc
        parsed = parse_keys_file(text, str(path))
        if not parsed:
            raise GatewayStartError(f"gateway.api_keys_file {str(path)!r} holds no key")
        keys += parsed
    return Keyring(tuple(keys))


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries in `Authorization: Bearer K` or `X-Api-Key: K`, if any.
    `headers`: aiohttp's (any case) or names lowercased (gateway.http1)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() or None
    return headers.get("x-api-key") or None


def keyring_for(config: GatewayConfig, given: Keyring | None = None) -> Keyring:
    """The keys a gateway with `config` serves with (`given`, else its env variable and file);
    GatewayStartError for a bind beyond loopback without any key."""
    keys = given if given is not None else load_keyring(config.api_keys_env, config.api_keys_file)
    if not is_loopback(config.host) and not keys.enabled:
        raise GatewayStartError(
            f"refusing to serve the gateway on {config.host}: it is not a loopback address and no API key is "
            "configured",
            hint="set gateway.api_keys_env or gateway.api_keys_file, or bind 127.0.0.1",
        )
    return keys
