"""The fields of a multipart form (a transcription's `model`), read where they lie."""

from __future__ import annotations

from llama_orchestrator.gateway.multipart import form_fields, is_form

AUDIO = b"RIFF" + bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n"


def form(boundary: bytes, *parts: tuple[bytes, bytes]) -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + head + b"\r\n\r\n" + value + b"\r\n" for head, value in parts)
    return body + b"--" + boundary + b"--\r\n"


def test_the_fields_not_the_file_whatever_the_order_and_quoting() -> None:
    body = form(b"xyz",
                (b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav', AUDIO),
                (b'Content-Disposition: form-data; name="model"', b"whisper"),
                (b'content-disposition: form-data; name="stream"', b"true"),
                (b'Content-Disposition: form-data; name="model"', b"second"))
    assert is_form("multipart/form-data; boundary=xyz") and not is_form("application/json")
    for content_type in ("multipart/form-data; boundary=xyz", 'Multipart/Form-Data; charset=utf-8; boundary="xyz"'):
        assert form_fields(body, content_type) == {"model": "whisper", "stream": "true"}  # the first model wins


def test_what_is_not_a_well_formed_form_gives_no_fields() -> None:
    whole = form(b"b", (b'Content-Disposition: form-data; name="model"', b"m"))
    assert form_fields(whole, "multipart/form-data") == {}  # no boundary given
    assert form_fields(whole, "multipart/form-data; boundary=other") == {}
    assert form_fields(whole, "multipart/form-data; boundary=b\u2603") == {}  # not even latin-1
    assert form_fields(whole[: whole.index(b"m\r\n--b--")], "multipart/form-data; boundary=b") == {}  # cut short
    long_value = form(b"b", (b'Content-Disposition: form-data; name="model"', b"m" * 5000))
    assert form_fields(long_value, "multipart/form-data; boundary=b") == {}  # no model name is that long
    a_file_named_model = form(b"b", (b'Content-Disposition: form-data; name="model"; filename="m"', b"m"))
    assert form_fields(a_file_named_model, "multipart/form-data; boundary=b") == {}
