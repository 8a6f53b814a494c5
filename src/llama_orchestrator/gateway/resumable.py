"""llama.cpp's resumable streams at the gateway's root, as its router mode serves them.

A client that names its conversation (`X-Conversation-Id`, as llama.cpp's web UI does) gets an
answer that llama-server finishes into a buffer even after the client has gone; after a reload
it asks where its conversations stand and reads on from any offset:

    POST   /v1/streams/lookup   {"conversation_ids": [...]}   each live one's progress
    GET    /v1/stream?conv_id=<id>&from=<offset>              the answer from that byte on
    DELETE /v1/stream?conv_id=<id>                            stop it and drop the buffer

The buffer lives in the llama-server that answered, so the gateway remembers which instance took
each named conversation (`ConversationOwners`, bounded), and the model the request named, and
sends these there; a key sees only the conversations of instances it may use, or that named a
model it may use (a key scoped to a variant: gateway.catalog). Through `/instances/<name>/` they
reach that instance directly, as any of its routes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from llama_orchestrator.core.routing import InstanceDirectory, Upstream
from llama_orchestrator.core.states import PROCESS_STATES
from llama_orchestrator.gateway.auth import Key
from llama_orchestrator.gateway.catalog import own_names
from llama_orchestrator.gateway.errors import SOURCE_HEADER, BadRequest, NotFound
from llama_orchestrator.gateway.pool import UpstreamPool
from llama_orchestrator.gateway.proxy import upstream_headers
from llama_orchestrator.gateway.upstream import ConnectFailed, Timeouts, UpstreamClosed, address

HEADER = "X-Conversation-Id"
REMEMBERED = 4096  # conversations whose instance is remembered (the oldest are forgotten first)
LOOKUP_TIMEOUT = Timeouts(connect=2.0, total=5.0)  # an instance that cannot say in time says nothing

Forward = Callable[[web.BaseRequest, Upstream, str], Awaitable[web.StreamResponse]]


class ConversationOwners:
    """Which instance took each named conversation, and for which model, most recent last."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        self._owners: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._limit = limit

    def note(self, headers: Mapping[str, str], instance: str, model: str = "") -> None:
        """Remember `instance` (and the `model` the request named) for the conversation `headers`
        name, if they name one (aiohttp's headers, or names lowercased as gateway.http1 gives them)."""
        if conversation := headers.get(HEADER.lower()):
            self.remember(conversation, instance, model)

    def remember(self, conversation: str, instance: str, model: str = "") -> None:
        self._owners[conversation] = (instance, model)
        self._owners.move_to_end(conversation)
        if len(self._owners) > self._limit:
            self._owners.popitem(last=False)

    def owner(self, conversation: str) -> str | None:
        found = self._owners.get(conversation)
        return found[0] if found else None

    def model(self, conversation: str) -> str:
        """The model the conversation's request named ("" when not known)."""
        found = self._owners.get(conversation)
        return found[1] if found else ""

    def forget(self, conversation: str) -> None:
        self._owners.pop(conversation, None)


class ResumableStreams:
    def __init__(
        self, owners: ConversationOwners, directory: InstanceDirectory,
        authorize: Callable[[web.BaseRequest], Key | None], pool: Callable[[], UpstreamPool],
        forward: Forward,
    ) -> None:
        self.owners = owners
        self.directory = directory
        self.authorize = authorize
        self.pool = pool
        self.forward = forward  # gateway.native's: the request to a path of one instance, as it answers

    def holder(self, conversation: str, key: Key | None) -> Upstream | None:
        """The instance holding `conversation`'s stream, while its process runs and `key` may use it
        (or the model the conversation's request named: a key scoped to a variant reads on its own)."""
        name = self.owners.owner(conversation)
        upstream = next((u for u in self.directory.upstreams() if u.name == name), None) if name else None
        if upstream is None or upstream.state not in PROCESS_STATES:
            return None
        if key is None:
            return upstream
        model = self.owners.model(conversation)
        return upstream if key.allows(own_names(upstream) | ({model} if model else set())) else None

    async def stream(self, request: web.BaseRequest) -> web.StreamResponse:
        """GET (read on) or DELETE (stop) /v1/stream?conv_id=<id>, at the instance that holds it."""
        key = self.authorize(request)
        conversation = request.query.get("conv_id", "")
        if not conversation:
            raise BadRequest("name the conversation: /v1/stream?conv_id=<id>", code="conv_id_required",
                             param="conv_id")
        upstream = self.holder(conversation, key)
        if request.method == "DELETE":
            self.owners.forget(conversation)
            if upstream is None:  # nothing to stop, as llama.cpp's router answers it
                return web.Response(status=204, headers={SOURCE_HEADER: "gateway"})
        elif upstream is None:
            raise NotFound("Stream not found or expired", code="stream_not_found")
        return await self.forward(request, upstream, f"/v1/stream?{request.query_string}")

    async def lookup(self, request: web.BaseRequest) -> web.StreamResponse:
        """POST /v1/streams/lookup: each instance asked only about the conversations it took."""
        key = self.authorize(request)
        try:
            asked = orjson.loads(await request.read()).get("conversation_ids")
        except (orjson.JSONDecodeError, AttributeError):
            asked = None
        by_owner: dict[str, tuple[Upstream, list[str]]] = {}
        for conversation in asked if isinstance(asked, list) else []:
            if isinstance(conversation, str) and (upstream := self.holder(conversation, key)) is not None:
                by_owner.setdefault(upstream.name, (upstream, []))[1].append(conversation)
        found: list[object] = []
        for upstream, conversations in by_owner.values():
            found += await self._ask(upstream, conversations)
        return web.json_response(found, headers={SOURCE_HEADER: "gateway"})

    async def _ask(self, upstream: Upstream, conversations: list[str]) -> list[object]:
        """What `upstream` says of `conversations` ([] if it cannot say)."""
        headers = {**upstream_headers({}, upstream), "Content-Type": "application/json"}
        body = orjson.dumps({"conversation_ids": conversations})
        try:
            host, port, prefix = address(upstream.base_url)
            resp = await self.pool().request("POST", host, port, prefix + "/v1/streams/lookup", headers, body,
                                             LOOKUP_TIMEOUT)
            try:
                answer = orjson.loads(await resp.read()) if resp.status == 200 else []
            finally:
                resp.close()
        except (ConnectFailed, UpstreamClosed, TimeoutError, orjson.JSONDecodeError):
            return []
        return [entry for entry in answer if isinstance(entry, dict)] if isinstance(answer, list) else []
