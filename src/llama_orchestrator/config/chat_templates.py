"""llama.cpp's built-in chat template names, and the one flag that makes them work.

llama-server resolves a `--chat-template` name such as `gemma` or `llama3` only on its legacy
template path. Since Jinja became its default (`--jinja`), the value is taken as the Jinja
template's own text instead: `--chat-template gemma` renders every chat prompt as the word
"gemma", and llama-server says nothing (checked on this project's build with `/apply-template`;
`chatml` alone is special-cased and works either way). So a name in `model.chat_template` is
rendered with `--no-jinja`, and a name that would still meet Jinja is refused with the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from llama_orchestrator.gguf_file import CHAT_TEMPLATE

#: llama.cpp's `LLM_CHAT_TEMPLATES` (src/llama-chat.cpp), as listed by `llama-server --help`.
BUILTIN_NAMES = frozenset({
    "chatml", "llama2", "llama2-sys", "llama2-sys-bos", "llama2-sys-strip", "mistral-v1", "mistral-v3",
    "mistral-v3-tekken", "mistral-v7", "mistral-v7-tekken", "phi3", "phi4", "falcon3", "zephyr", "monarch",
    "gemma", "orion", "openchat", "vicuna", "vicuna-orca", "deepseek", "deepseek2", "deepseek3",
    "deepseek-ocr", "command-r", "llama3", "chatglm3", "chatglm4", "glmedge", "minicpm", "exaone3",
    "exaone4", "exaone-moe", "rwkv-world", "granite", "granite-4.0", "granite-4.1", "gigachat", "megrez",
    "yandex", "bailing", "bailing-think", "bailing2", "llama4", "smolvlm", "hunyuan-moe", "gpt-oss",
    "hunyuan-dense", "hunyuan-vl", "kimi-k2", "seed_oss", "grok-2", "pangu-embedded", "solar-open",
})
JINJA_SAFE = frozenset({"chatml"})  # llama.cpp maps this name to its ChatML source under Jinja too


def needs_legacy_path(template: str | None) -> bool:
    """Whether `template` is a built-in name that llama-server applies only without Jinja."""
    return template in BUILTIN_NAMES and template not in JINJA_SAFE


def unknown_template(template: str | None) -> str | None:
    """Why `template` is neither a built-in name nor Jinja text, or None: llama-server would take a
    misspelt name (`gema`) as the template's whole text, and every chat prompt would be that word."""
    if template is None or template in BUILTIN_NAMES or "{{" in template or "{%" in template:
        return None
    close = difflib.get_close_matches(template, sorted(BUILTIN_NAMES), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    shown = template if len(template) <= 40 else template[:39] + "…"
    return (f"chat_template {shown!r} is neither one of llama.cpp's built-in template names nor Jinja template "
            f"text (with {{{{ or {{%): llama-server would send it as every chat prompt{hint} Built-in names: "
            f"{', '.join(sorted(BUILTIN_NAMES))}")


def flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value `args` give `flag` (`--flag value` or `--flag=value`; the last one wins)."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1:]
    return value


def template_problem(template: str | None, jinja: bool | None, args: Sequence[str]) -> str | None:
    """Why this combination would give every chat prompt the template's name as its text, or None."""
    jinja_in_args = "--jinja" in args
    no_jinja_in_args = "--no-jinja" in args
    if needs_legacy_path(template) and (jinja or jinja_in_args):
        where = "jinja is true" if jinja else "args pass --jinja"
        return (f'chat_template "{template}" is one of llama.cpp\'s built-in template names, which llama-server '
                f"applies only without Jinja, but {where}: the name itself would become every chat prompt. "
                "Remove jinja: true (or --jinja), or give the template's Jinja text instead of its name")
    in_args = flag_value(args, "--chat-template")
    if needs_legacy_path(in_args) and jinja is not False and not no_jinja_in_args:
        return (f'args pass --chat-template {in_args}, one of llama.cpp\'s built-in template names; llama-server '
                f'uses Jinja by default and then takes the name as the template\'s text, so every chat prompt would '
                f'read "{in_args}". Set model.chat_template to "{in_args}" instead (rendered with --no-jinja), '
                "or add --no-jinja to args")
    return None


#: Families whose own chat format is one of the built-in names (and not ChatML, which llama-server
#: falls back to): what to suggest for a model file that holds no template
FAMILY_TEMPLATES = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "gemma3n": "gemma", "phi3": "phi3"}
NOT_CHAT = ("--embedding", "--embeddings", "--reranking", "--rerank")


def missing_template(keys: Sequence[str] | None, architecture: str, template: str | None,
                     args: Sequence[str]) -> str | None:
    """What to tell the user when the model file (its metadata `keys`, gguf_file.metadata_keys)
    holds no chat template and the config gives none: llama-server then formats every chat as
    ChatML, and a model trained on another format answers it with nonsense. None when there is
    nothing to say (a template somewhere, a ChatML family, an embedding model, unreadable keys)."""
    if keys is None or CHAT_TEMPLATE in keys or template or any(a in NOT_CHAT for a in args):
        return None
    if flag_value(args, "--chat-template") or flag_value(args, "--chat-template-file"):
        return None
    suggestion = FAMILY_TEMPLATES.get(architecture)
    fix = (f'set model.chat_template to "{suggestion}", llama.cpp\'s built-in template for {architecture}'
           if suggestion else "set model.chat_template to its family's built-in template name (`llama-server "
           "--help` lists them under --chat-template), or pass --chat-template-file in args")
    return ("the model file holds no chat template, so llama-server formats every chat as ChatML, which a model "
            f"trained on another format may answer with nonsense: {fix}")
