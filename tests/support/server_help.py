"""A llama-server `--help` in the real one's shape, and stand-in binaries that print it."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.orch import FAKE_SERVER

# Lines in the shape this project's llama-server prints them (b-series builds of 2026), with the
# cases that matter: aliases, no value, a bracketed value, two values, a placeholder with spaces,
# a flag line too long for its column, section rules and continuation lines.
HELP = """\
----- common params -----

-h,    --help, --usage                  print usage and exit
-t,    --threads N                      number of CPU threads to use during generation (default: -1)
                                        (env: LLAMA_ARG_THREADS)
-c,    --ctx-size N                     size of the prompt context (default: 0, 0 = loaded from model)
-fa,   --flash-attn [on|off|auto]       set Flash Attention use ('on', 'off', or 'auto', default: 'auto')
-ngl,  --gpu-layers, --n-gpu-layers N   max. number of layers to store in VRAM
-ot,   --override-tensor <tensor name pattern>=<buffer type>,...
                                        override tensor buffer type
--control-vector-layer-range START END
                                        layer range to apply the control vector(s) to, start and end inclusive
-m,    --model FNAME                    model path to load
-a,    --alias STRING                   set model name aliases, comma-separated
--embedding, --embeddings               restrict to only support embedding use case
--jinja, --no-jinja                     whether to use jinja template engine for chat (default: enabled)
--chat-template JINJA_TEMPLATE          set custom jinja chat template
-np,   --parallel N                     number of server slots (default: -1)

----- example-specific params -----

--host HOST                             ip address to listen, or bind to an UNIX socket (default: 127.0.0.1)
--port PORT                             port to listen (default: 8080)
"""


def help_only_binary(directory: Path) -> Path:
    """An executable that answers `--help` as llama-server does and refuses to run otherwise."""
    (directory / "help.txt").write_text(HELP)
    path = directory / "llama-server"
    path.write_text(f'#!/bin/sh\n[ "$1" = --help ] && exec cat "{directory / "help.txt"}"\nexit 1\n')
    path.chmod(0o755)
    return path


def fake_server_with_help(directory: Path) -> Path:
    """The fake llama-server (tests/bin), answering `--help` as the real one does: its command
    lines are judged as the real binary's are, and it runs as the fake does."""
    (directory / "help.txt").write_text(HELP)
    path = directory / "llama-server-with-help"
    path.write_text(f'#!/bin/sh\n[ "$1" = --help ] && exec cat "{directory / "help.txt"}"\n'
                    f'exec "{sys.executable}" "{FAKE_SERVER}" "$@"\n')
    path.chmod(0o755)
    return path
