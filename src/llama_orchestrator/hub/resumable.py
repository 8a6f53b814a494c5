"""One model file from Hugging Face into models/<owner>/<repo>/, a cut download resumed in the next run.

    fetch_file("owner/repo", "model-Q8_0.gguf", "main", models_dir / "owner" / "repo")   # -> Path

Why not `hf_hub_download`: since huggingface_hub 2 it writes each download to a file unique to the
process and deletes it when the download fails (huggingface_hub PR #4228), so a pull cut by Ctrl+C,
a crash or a network that stays down began again at byte 0 in the next run: hours, for a big GGUF.
Here the bytes go to `.cache/huggingface/download/<file>.<etag>.incomplete` (huggingface_hub's own
notes folder: `models ls` does not list it, `models rm` deletes it), which outlives the run; the
next pull asks for the rest with a Range request through huggingface_hub's own `http_get`, then
moves the whole file into place and writes huggingface_hub's metadata, so a file is complete under
its name or not there at all. The etag in the partial's name keeps a file changed upstream from
being stitched onto the old one's bytes. Files on Xet storage come over HTTP too, as llama.cpp's
`-hf` and hf_hub_download without hf_xet fetch them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from llama_orchestrator.errors import HubError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def fetch_file(repo: str, name: str, revision: str, target: Path) -> Path:
    """`target`/`name`: kept if it is current, else fetched (from where a cut download stopped)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub._local_folder import (  # private: the notes hf_hub_download(local_dir=) keeps
        get_local_download_paths,
        read_download_metadata,
        write_download_metadata,
    )
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import (  # type: ignore[attr-defined]  # public, but not re-exported for mypy
        WeakFileLock,
        build_hf_headers,
    )

    url = hf_hub_url(repo, name, revision=revision)
    meta = get_hf_file_metadata(url)
    etag, commit = meta.etag, meta.commit_hash
    if etag is None or commit is None:
        raise HubError(f"{url} answered without the headers of a Hugging Face Hub (ETag, X-Repo-Commit)",
                       hint="check that HF_ENDPOINT names a Hugging Face Hub or a mirror of one")
    paths = get_local_download_paths(target, name)
    known = read_download_metadata(target, name)
    if paths.file_path.is_file() and (known.etag == etag if known else _hash_is(paths.file_path, etag)):
        write_download_metadata(target, name, commit_hash=commit, etag=etag)
        return paths.file_path

    source = meta.location if meta.xet_file_data is None else url  # a Xet file: the Hub redirects the GET
    headers = build_hf_headers()
    if urlsplit(source).netloc != urlsplit(url).netloc:
        headers.pop("authorization", None)  # a signed CDN address: the token stays with the Hub
    partial = paths.metadata_path.parent / f"{paths.file_path.name}.{etag}.incomplete"
    with WeakFileLock(paths.lock_path):  # two pulls of one file never write its partial at once
        _drop_other_partials(partial, paths.file_path.name)
        cached = try_to_load_from_cache(repo, name, revision=commit)
        if isinstance(cached, str):  # already in the Hugging Face cache (HF_HOME): copied, not fetched
            shutil.copyfile(cached, partial)
        else:
            if meta.size is not None and partial.is_file() and partial.stat().st_size > meta.size:
                partial.unlink()
            with partial.open("ab") as out:
                http_get(source, out, resume_size=out.tell(), headers=headers, expected_size=meta.size,
                         displayed_filename=paths.file_path.name)
        os.replace(partial, paths.file_path)
    write_download_metadata(target, name, commit_hash=commit, etag=etag)
    return paths.file_path


def _hash_is(path: Path, etag: str) -> bool:
    """A file with no notes (copied in by hand) is current if its sha256 is the etag, as
    hf_hub_download judges it; etags that are no sha256 cannot tell, so it is fetched again."""
    if not _SHA256.match(etag):
        return False
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest() == etag


def _drop_other_partials(keep: Path, file_name: str) -> None:
    """Partials of an earlier version of the file (another etag) can never be finished: delete them."""
    mine = re.compile(rf"{re.escape(file_name)}\.[^.]+\.incomplete")
    for path in keep.parent.iterdir():
        if path != keep and mine.fullmatch(path.name):
            path.unlink(missing_ok=True)
