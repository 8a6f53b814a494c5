"""The hand-aligned `ps` table: alignment, an empty fleet, and cutting only the last column."""

from __future__ import annotations

from llama_orchestrator.cli._format import columns


def test_columns_align_and_cut_only_the_last_column() -> None:
    text = columns(["NAME", "STATE", "ERR"], [["a", "ready", "x" * 50], ["long-name", "failed", "boom"]],
                   width=40, styled=1)
    lines = text.plain.splitlines()
    assert lines[0] == "NAME       STATE   ERR"
    assert lines[1].startswith("a          ready   ") and lines[1].endswith("…") and len(lines[1]) == 40
    assert lines[2] == "long-name  failed  boom"
    styles = {text.plain[span.start:span.end]: str(span.style) for span in text.spans}
    assert styles["failed"] == "bold red"


def test_a_path_is_cut_at_its_start_and_a_pipe_gets_every_line_whole() -> None:
    path = "/root/.cache/llama-orchestrator/models/ggml-org/gemma-3-1b-it-GGUF/gemma-3-1b-it-Q4_K_M.gguf"
    cut = columns(["NAME", "MODEL"], [["gemma", path]], width=40, keep_end=True).plain.splitlines()[1]
    assert cut == "gemma  …" + path[-32:] and len(cut) == 40 and cut.endswith("gemma-3-1b-it-Q4_K_M.gguf")
    whole = columns(["NAME", "ERR"], [["r1", "exited (killed by signal 9: SIGKILL)" * 3]], width=None)
    assert whole.plain.splitlines()[1] == "r1    " + "exited (killed by signal 9: SIGKILL)" * 3


def test_columns_with_no_rows_print_the_header() -> None:
    assert columns(["NAME", "STATE", "ERR"], [], width=80).plain == "NAME  STATE  ERR"


def test_the_gateway_header_says_it_refuses_requests_when_its_keys_could_not_be_read() -> None:
    from rich.console import Group

    from llama_orchestrator.cli.watch import render
    from llama_orchestrator.daemon.protocol import DaemonStatus, GatewayInfo

    why = "cannot read gateway.api_keys_file '/k': No such file or directory; create or fix the file"
    refusing = GatewayInfo(enabled=True, address="http://127.0.0.1:8000", refusing=why)
    assert refusing.summary() == "http://127.0.0.1:8000 (refusing requests: its API keys could not be read)"
    assert GatewayInfo(enabled=True, address="http://127.0.0.1:8000").summary() == "http://127.0.0.1:8000"
    assert GatewayInfo(enabled=True, error="port taken").summary() == "not running (port taken)"
    assert GatewayInfo(enabled=False).summary() == "disabled"
    assert GatewayInfo.model_validate_json(refusing.model_dump_json()) == refusing
    status = DaemonStatus(pid=1, version="0", home="/h", control_address="127.0.0.1:1", started_at=0.0,
                          uptime_s=1.0, gateway=refusing, store="ok", store_ok=True, instances=[])
    screen = render(status, show_all=True)  # `ps --watch`
    assert isinstance(screen, Group)
    assert "gateway http://127.0.0.1:8000 (refusing requests: its API keys could not be read)" in str(
        screen.renderables[0])
