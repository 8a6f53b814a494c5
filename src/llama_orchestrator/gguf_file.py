"""What a model file says about itself: is it GGUF, how big, how old, and which model it holds
(L0: stdlib only).

Config validation, the start preflight and `create` refuse a file llama-server cannot load with
a reason a person can act on (a Git LFS pointer, a safetensors file, a split model with a part
missing), before any process runs. The gateway's model lists give the size, the time and, for
Ollama clients, the architecture, size label and quantization; `inspect` and the dashboard say
what the file holds.

The metadata is found by looking up each wanted key's exact bytes (its length, name and type
tag) in the file's first `HEAD_BYTES`, not by walking the key-value section: writers put
`general.file_type` after the tokenizer's arrays (6.5 MB and 262,144 strings into Gemma 3), and
walking those costs 65 ms in Python where the lookup costs 3 ms. A tokenizer string would have
to hold a key's 8-byte length, its name and its type tag to be taken for it. The `gguf` package
reads everything (12 s on the same file) and needs numpy.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"GGUF"
HEAD_BYTES = 32 * 1024 * 1024  # where the metadata is looked for: past the largest tokenizers' arrays
FIRST_READ = 256 * 1024  # read first; doubled while general.file_type is not in it (most files: once)
_STRING, _UINT32, _UINT64 = 8, 4, 10  # GGUF value type tags
_SPLIT = re.compile(r"(?P<stem>.+)-\d{5}-of-(?P<parts>\d{5})\.gguf")  # llama.cpp's split models

# llama.cpp's llama_ftype, as Ollama's `quantization_level` spells it
QUANTIZATIONS = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}


@dataclass(frozen=True, slots=True)
class GgufFacts:
    """The model a GGUF file holds; empty fields are not in its first `HEAD_BYTES`."""

    architecture: str = ""  # general.architecture: llama, qwen2, gemma3
    name: str = ""  # general.name
    size_label: str = ""  # general.size_label: 8B, 270M
    file_type: int | None = None  # general.file_type (see QUANTIZATIONS)
    context_length: int | None = None  # <architecture>.context_length: what it was trained for
    # the shapes its KV cache is made of (config.footprint): None when the file does not say
    block_count: int | None = None  # <architecture>.block_count: layers
    embedding_length: int | None = None  # <architecture>.embedding_length
    head_count: int | None = None  # <architecture>.attention.head_count
    head_count_kv: int | None = None  # <architecture>.attention.head_count_kv (None: per layer, or as head_count)
    key_length: int | None = None  # <architecture>.attention.key_length (None: embedding_length / head_count)
    value_length: int | None = None  # <architecture>.attention.value_length (likewise)
    sliding_window: int | None = None  # <architecture>.attention.sliding_window: tokens, for the layers that use one
    pooling_type: int | None = None  # <architecture>.pooling_type: how an embedding model pools (how Ollama tells one)

    @property
    def quantization(self) -> str:
        return "" if self.file_type is None else QUANTIZATIONS.get(self.file_type, f"type {self.file_type}")

    def describe(self) -> str:
        """`gemma3 · 270M · Q4_K_M · trained for 32768 tokens` (`inspect`, the dashboard); "" when
        the file says nothing."""
        if not self.architecture:
            return ""
        trained = f"trained for {self.context_length} tokens" if self.context_length else ""
        return " · ".join(part for part in (self.architecture, self.size_label, self.quantization, trained) if part)


def parts(path: str | Path) -> list[Path]:
    """The files llama-server loads for `path`: every part of a split model (`x-00001-of-00003.gguf`)."""
    file = Path(path)
    if split := _SPLIT.fullmatch(file.name):
        count = split["parts"]
        return [file.with_name(f"{split['stem']}-{k:05d}-of-{count}.gguf") for k in range(1, int(count) + 1)]
    return [file]


def size_and_mtime(path: str | Path) -> tuple[int, float]:
    """The model's size in bytes (all its parts) and its last change (epoch seconds); (0, 0.0)
    when it cannot be read."""
    size, mtime = 0, 0.0
    for part in parts(path):
        try:
            stat = part.stat()
        except OSError:
            continue
        size += stat.st_size
        mtime = max(mtime, stat.st_mtime)
    return size, mtime


def problem(path: str | Path) -> str | None:
    """Why llama-server could not load `path` as a model, in words that say what to do; None
    when it is a file that starts as GGUF does."""
    file = Path(path)
    if file.is_dir():
        return f"{path} is a directory: model.path names the .gguf file (the first part of a split model)"
    if not file.is_file():
        return f"model file not found: {path}"
    try:
        with file.open("rb") as handle:
            start = handle.read(64)
    except OSError as exc:
        return f"cannot read the model file {path}: {exc.strerror or exc}"
    if start.startswith(MAGIC):
        missing = [part.name for part in parts(file) if not part.is_file()]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            return (f"{path} is one part of a split model, and {', '.join(missing)} {verb} missing"
                    " (an unfinished download?)")
        return None
    if not start:
        return f"the model file {path} is empty (an interrupted download?)"
    if start.startswith(b"version https://git-lfs"):
        return f"{path} is a Git LFS pointer, not the model: run `git lfs pull` where it was cloned"
    if start[8:10] == b'{"':
        return (f"{path} is a safetensors file: convert it to GGUF (llama.cpp's convert_hf_to_gguf.py)"
                " or download a .gguf")
    return (f"{path} is not a GGUF model file: it starts with {start[:8]!r} where a GGUF file starts with"
            " b'GGUF' (llama-server loads GGUF files only)")


def facts(path: str | Path) -> GgufFacts:
    """The model `path` holds, from its GGUF metadata; empty facts when it cannot be read."""
    try:
        with Path(path).open("rb") as handle:
            head = handle.read(FIRST_READ)
            if not head.startswith(MAGIC):
                return GgufFacts()
            while _value_at(head, "general.file_type", _UINT32) < 0 and len(head) < HEAD_BYTES:
                more = handle.read(len(head))
                if not more:
                    break
                head += more
    except OSError:
        return GgufFacts()
    arch = _string(head, "general.architecture")

    def of_arch(key: str) -> int | None:
        return _integer(head, f"{arch}.{key}") if arch else None

    return GgufFacts(
        architecture=arch,
        name=_string(head, "general.name"),
        size_label=_string(head, "general.size_label"),
        file_type=_integer(head, "general.file_type"),
        context_length=of_arch("context_length"),
        block_count=of_arch("block_count"),
        embedding_length=of_arch("embedding_length"),
        head_count=of_arch("attention.head_count"),
        head_count_kv=of_arch("attention.head_count_kv"),
        key_length=of_arch("attention.key_length"),
        value_length=of_arch("attention.value_length"),
        sliding_window=of_arch("attention.sliding_window"),
        pooling_type=of_arch("pooling_type"),
    )


CHAT_TEMPLATE = "tokenizer.chat_template"  # the key of the model's own chat template (metadata_keys)
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # value type tag -> bytes
_ARRAY = 9


class _Short(Exception):
    """The metadata goes on past what may be read (or the file ends inside it)."""


def metadata_keys(path: str | Path) -> list[str] | None:
    """Every metadata key of the GGUF file `path`, in order; None when it is not GGUF or its
    metadata cannot be read whole within `HEAD_BYTES`. Unlike `facts`, this walks every value
    (about 60 ms for a 262,144-token vocabulary): for `create` and `inspect`, never per request."""
    try:
        with Path(path).open("rb") as handle:
            return _walk_keys(handle)
    except (OSError, _Short, struct.error):
        return None


def _walk_keys(handle: BinaryIO) -> list[str] | None:
    head = handle.read(FIRST_READ)
    if not head.startswith(MAGIC) or len(head) < 24:
        return None

    def need(end: int) -> None:
        nonlocal head
        while end > len(head):
            more = handle.read(len(head))
            if not more or len(head) >= HEAD_BYTES:
                raise _Short
            head += more

    (count,) = struct.unpack_from("<Q", head, 16)
    pos, found = 24, []
    for _ in range(count):
        need(pos + 8)
        (length,) = struct.unpack_from("<Q", head, pos)
        need(pos + 8 + length + 4)
        found.append(head[pos + 8:pos + 8 + length].decode("utf-8", "replace"))
        (kind,) = struct.unpack_from("<I", head, pos + 8 + length)
        pos += 12 + length
        items = 1
        if kind == _ARRAY:
            need(pos + 12)
            kind, items = struct.unpack_from("<IQ", head, pos)
            pos += 12
        if kind == _STRING:
            for _ in range(items):
                need(pos + 8)
                pos += 8 + struct.unpack_from("<Q", head, pos)[0]
        elif kind in _FIXED:
            pos += _FIXED[kind] * items
        else:
            return None  # a nested array or an unknown type: not worth walking
    return found


def _value_at(head: bytes, key: str, kind: int) -> int:
    """Where the value of `key` (of type `kind`) starts in `head`, or -1."""
    name = key.encode()
    tag = struct.pack("<Q", len(name)) + name + struct.pack("<I", kind)
    at = head.find(tag)
    return at + len(tag) if at >= 0 else -1


def _string(head: bytes, key: str) -> str:
    at = _value_at(head, key, _STRING)
    if at < 0 or at + 8 > len(head):
        return ""
    (length,) = struct.unpack_from("<Q", head, at)
    return head[at + 8:at + 8 + min(length, 1024)].decode("utf-8", "replace")


def _integer(head: bytes, key: str) -> int | None:
    for kind, form in ((_UINT32, "<I"), (_UINT64, "<Q")):
        at = _value_at(head, key, kind)
        if at >= 0 and at + struct.calcsize(form) <= len(head):
            return int(struct.unpack_from(form, head, at)[0])
    return None
