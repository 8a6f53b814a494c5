"""Which instance holds a named conversation's stream, and who may ask (gateway.resumable)."""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict
from tests.unit.gateway.gateway_fakes import StaticDirectory, upstream

from llama_orchestrator.config.models import RequestFilters
from llama_orchestrator.core.states import InstanceState as S
from llama_orchestrator.gateway.auth import Keyring, parse_keys_file
from llama_orchestrator.gateway.pool import UpstreamPool
from llama_orchestrator.gateway.request_filters import rewriter
from llama_orchestrator.gateway.resumable import ConversationOwners, ResumableStreams


def test_owners_are_remembered_most_recent_last_and_bounded() -> None:
    owners = ConversationOwners(limit=2)
    for conversation, instance in (("a", "x"), ("b", "y"), ("a", "z"), ("c", "y")):
        owners.remember(conversation, instance)
    assert (owners.owner("a"), owners.owner("b"), owners.owner("c")) == ("z", None, "y")  # b was the oldest
    owners.forget("a")
    assert owners.owner("a") is None
    owners.note(CIMultiDict({"X-Conversation-ID": "d"}), "x")  # aiohttp's headers, any case
    owners.note({"x-conversation-id": "e"}, "y")  # the fast lane's, lowercased
    owners.note({"content-type": "application/json"}, "z")  # no name: nothing to remember
    assert (owners.owner("d"), owners.owner("e")) == ("x", "y")


def test_a_key_finds_the_conversations_of_instances_it_may_use_while_they_run() -> None:
    directory = StaticDirectory([upstream("chat"), upstream("embed"), upstream("down", state=S.STOPPED)])
    owners = ConversationOwners()
    for conversation, instance in (("c1", "chat"), ("c2", "embed"), ("c3", "down"), ("c4", "gone")):
        owners.remember(conversation, instance)

    async def never(_request: web.BaseRequest, *_args: object) -> web.StreamResponse:
        raise AssertionError("nothing is forwarded here")

    streams = ResumableStreams(owners, directory, lambda _request: None, lambda: UpstreamPool(keepalive_s=1.0), never)
    scoped = Keyring(tuple(parse_keys_file("k chat\n"))).match("k")
    assert scoped is not None
    assert [getattr(streams.holder(c, scoped), "name", None) for c in ("c1", "c2")] == ["chat", None]
    assert [getattr(streams.holder(c, None), "name", None) for c in ("c1", "c2", "c3", "c4")] == [
        "chat", "embed", None, None]  # a stopped instance's buffer is gone with it; so is a removed one's
    directory.set("chat", state=S.UNHEALTHY)  # a failing probe: its process, and the buffer, are still there
    assert getattr(streams.holder("c1", None), "name", None) == "chat"


def test_a_key_for_a_variant_finds_only_the_conversations_that_named_its_variant() -> None:
    variants = {"chat-long": RequestFilters(set_params={"max_tokens": 40})}
    directory = StaticDirectory([upstream("chat", aliases=("chat-long",), variants=("chat-long",),
                                          rewrite_body=rewriter(RequestFilters(), variants))])
    owners = ConversationOwners()
    owners.note({"x-conversation-id": "by-variant"}, "chat", "chat-long")
    owners.note({"x-conversation-id": "by-name"}, "chat", "chat")
    owners.remember("unknown-model", "chat")

    async def never(_request: web.BaseRequest, *_args: object) -> web.StreamResponse:
        raise AssertionError("nothing is forwarded here")

    streams = ResumableStreams(owners, directory, lambda _request: None, lambda: UpstreamPool(keepalive_s=1.0), never)
    ring = Keyring(tuple(parse_keys_file("v chat-long\ni chat\n")))
    variant, instance = ring.match("v"), ring.match("i")
    conversations = ("by-variant", "by-name", "unknown-model")
    assert [streams.holder(c, variant) is not None for c in conversations] == [True, False, False]
    assert [streams.holder(c, instance) is not None for c in conversations] == [True, True, True]
