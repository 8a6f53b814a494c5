"""Inference keys: where they come from, how a request presents one, what it may reach.

Keys come from the environment variable named by `gateway.api_keys_env` (comma-separated, all
models) and/or the file named by `gateway.api_keys_file`: one key per line, optionally followed
by whitespace and a comma-separated list of models (names or aliases) the key is limited to;
`#` starts a comment. Keys never come from argv.

A request presents a key as `Authorization: Bearer K` or `X-Api-Key: K` (like llama-server).
Every configured key is compared with `hmac.compare_digest`, all of them every time, so the
answer takes the same time whichever key (if any) matched.

Public without a key: `/health`, `/` (Ollama's "Ollama is running", which its clients probe, public
in Ollama too), `/instances/<name>/health` and the web UI's page `/instances/<name>/` (public in
llama-server too; it asks for the key). Everything else, `/v1/models`
and `/metrics` included, needs a key once keys are configured (`/v1/models` then lists only the
models the key may use): model names are not public information on a shared host.

Keys that are configured but cannot be read (a missing file, an unset variable) fail closed: a
gateway that had no keys before refuses every request that needs one, saying why, until a reconfigure
reads them (`Keyring.unreadable`); one that had keys keeps them.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.gateway.errors import GatewayStartError, KeysUnreadable, Unauthorized
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
    # why the configured keys could not be read, and how to fix it: no request gets past this keyring
    unreadable: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether a request needs a key (one that fails to load needs one too, and none matches)."""
        return bool(self.keys) or self.unreadable is not None

    @property
    def refusal(self) -> str:
        """What a request that this keyring does not let through is told."""
        if self.unreadable is not None:
            return f"the gateway's API keys could not be read, so it refuses every request that needs one: " \
                   f"{self.unreadable}"
        return "Invalid API key: send it as `Authorization: Bearer KEY` or `X-Api-Key: KEY`"

    def admit(self, headers: Mapping[str, str]) -> Key | None:
        """The key a request presents, None when it needs none; Unauthorized when it needs one and
        presents none that matches (or the keys could not be read, which it says)."""
        if not self.enabled:
            return None
        key = self.match(presented_key(headers))
        if key is None:
            raise Unauthorized(self.refusal, code="api_keys_unreadable" if self.unreadable else "invalid_api_key")
        return key

    def match(self, presented: str | None) -> Key | None:
        """The key `presented` equals, compared in constant time against every key; else None."""
        given = (presented or "").encode()
        found: Key | None = None
        for key in self.keys:
            if hmac.compare_digest(key.secret, given) and found is None:
                found = key
        return found if given else None


FIX_FILE = ("create or fix the file (one key per line), then run any llama-orch command that reads the configs, "
            "such as `llama-orch up`")


def _fix_env(name: str) -> str:
    return (f"set {name} in the environment the daemon starts in (that of `llama-orch daemon start`), then "
            "restart it (llama-orch daemon stop --keep-instances; llama-orch daemon start), or use "
            "gateway.api_keys_file")


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
                raise KeysUnreadable(f"{source}:{number}: empty model list after the key", hint=FIX_FILE)
            models = names
        keys.append(Key(parts[0].encode(), models))
    return keys


def parse_keys_env(value: str) -> list[Key]:
    return [Key(k.strip().encode(), None) for k in value.split(",") if k.strip()]


def load_keyring(
    api_keys_env: str | None, api_keys_file: str | None, environ: Mapping[str, str] | None = None
) -> Keyring:
    """Read every configured key; KeysUnreadable for a configured source that is missing or empty."""
    env = os.environ if environ is None else environ
    keys: list[Key] = []
    if api_keys_env:
        value = env.get(api_keys_env, "")
        parsed = parse_keys_env(value)
        if not parsed:
            raise KeysUnreadable(
                f"gateway.api_keys_env names {api_keys_env!r}, but that variable is unset or holds no key",
                hint=_fix_env(api_keys_env),
            )
        keys += parsed
    if api_keys_file:
        path = Path(api_keys_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8-sig")  # a BOM (Notepad's) is not part of the first key
        except OSError as exc:
            raise KeysUnreadable(f"cannot read gateway.api_keys_file {str(path)!r}: {exc.strerror}",
                                 hint=FIX_FILE) from exc
        parsed = parse_keys_file(text, str(path))
        if not parsed:
            raise KeysUnreadable(f"gateway.api_keys_file {str(path)!r} holds no key", hint=FIX_FILE)
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


def keyring_for(config: GatewayConfig, given: Keyring | None = None, running: Keyring | None = None) -> Keyring:
    """The keys a gateway with `config` serves with (`given`, else its env variable and file).
    Keys that cannot be read fail closed: KeysUnreadable when the `running` keyring holds keys (they
    stay), else a keyring that refuses every request, saying why. GatewayStartError for a bind beyond
    loopback without any key."""
    keys = given
    if keys is None:
        try:
            keys = load_keyring(config.api_keys_env, config.api_keys_file)
        except KeysUnreadable as exc:
            if running is not None and running.keys:
                raise
            keys = Keyring(unreadable=f"{exc}; {exc.hint}" if exc.hint else str(exc))
    if not is_loopback(config.host) and not keys.enabled:
        raise GatewayStartError(
            f"refusing to serve the gateway on {config.host}: it is not a loopback address and no API key is "
            "configured",
            hint="set gateway.api_keys_env or gateway.api_keys_file, or bind 127.0.0.1",
        )
    return keys
