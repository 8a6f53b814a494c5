"""config.chat_templates: what to say about a model whose file holds no chat template."""

from __future__ import annotations

from llama_orchestrator.config.chat_templates import missing_template

PLAIN = ["general.architecture", "tokenizer.ggml.tokens"]


def test_a_model_without_a_template_is_told_which_built_in_one_its_family_uses() -> None:
    note = missing_template(PLAIN, "gemma3", None, [])
    assert note is not None and "holds no chat template" in note and "formats every chat as ChatML" in note
    assert 'set model.chat_template to "gemma"' in note
    other = missing_template(PLAIN, "mamba", None, ["-c", "4096"])
    assert other is not None and "--chat-template-file" in other and '"gemma"' not in other


def test_nothing_to_say_when_a_template_is_somewhere_or_no_chat_is_served() -> None:
    assert missing_template([*PLAIN, "tokenizer.chat_template"], "gemma3", None, []) is None
    assert missing_template(PLAIN, "gemma3", "gemma", []) is None
    assert missing_template(PLAIN, "gemma3", None, ["--chat-template-file", "t.jinja"]) is None
    assert missing_template(PLAIN, "gemma3", None, ["--chat-template=chatml"]) is None
    assert missing_template(PLAIN, "bert", None, ["--embeddings"]) is None
    assert missing_template(None, "gemma3", None, []) is None  # keys unreadable: no guess
