"""The plain fields of a `multipart/form-data` body: how a transcription names its model.

OpenAI's `/v1/audio/transcriptions` (and llama-server's) takes a form: the audio file and fields
such as `model` and `stream`. The gateway routes it by `model` like any other request, so it reads
the fields' headers and small values where they lie, never copying the audio; the body goes
upstream as it came, boundary and all.
"""

from __future__ import annotations

import re

MEDIA_TYPE = "multipart/form-data"
_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)
MAX_FIELD = 4096  # a field value longer than this is not a model name (nor a flag)


def is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == MEDIA_TYPE


def form_fields(body: bytes, content_type: str) -> dict[str, str]:
    """The fields of the form that are not files, by name (the first of a repeated name wins), as
    far as the body is a well-formed form of that boundary ({} when it is not one at all)."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        return {}
    delimiter = b"--" + (match.group(1) or match.group(2)).encode("latin-1", "replace")
    fields: dict[str, str] = {}
    start = body.find(delimiter)
    while start >= 0:
        head_at = start + len(delimiter)
        if body.startswith(b"--", head_at):
            break  # the closing delimiter
        head_end = body.find(b"\r\n\r\n", head_at)
        end = body.find(b"\r\n" + delimiter, head_end + 4) if head_end >= 0 else -1
        if end < 0:
            break
        head = body[head_at:head_end]
        name = _NAME.search(head)
        if name is not None and b"filename=" not in head.lower() and end - head_end - 4 <= MAX_FIELD:
            key = name.group(1).decode("utf-8", "replace")
            fields.setdefault(key, body[head_end + 4:end].decode("utf-8", "replace"))
        start = end + 2
    return fields
