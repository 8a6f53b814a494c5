"""The rendered llama-server command line: golden argv lists."""

from __future__ import annotations

from llama_orchestrator.config.argv import build_command, quote_command
from llama_orchestrator.config.models import InstanceConfig


def config(**overrides: object) -> InstanceConfig:
    data: dict[str, object] = {"name": "a", "model": {"path": "/m/x.gguf"}, "server": {"port": 8001}}
    data.update(overrides)
    return InstanceConfig.model_validate(data)


def test_minimal_argv_always_has_host_and_port() -> None:
    assert build_command(config(), "llama-server", {}).argv == [
        "llama-server", "-m", "/m/x.gguf", "--host", "127.0.0.1", "--port", "8001", "--alias", "a",
    ]


def test_full_argv_in_order_with_zero_values() -> None:
    cfg = config(
        model={"path": "/m/x.gguf", "alias": "gpt", "context_size": 0, "parallel": 2, "threads": 4, "embeddings": True},
        gpu={"backend": "vulkan", "devices": [0, 1], "layers": 0, "split_mode": "layer"},
        args=["--flash-attn", "on", "; rm -rf ~"],
        server={"port": 8001, "metrics": True, "api_key_file": "/k/key.txt"},
    )
    assert build_command(cfg, "/bin/ls", {}).argv == [
        "/bin/ls", "-m", "/m/x.gguf", "--host", "127.0.0.1", "--port", "8001", "--alias", "gpt",
        "-c", "0", "-t", "4", "-np", "2", "--embeddings", "-ngl", "0", "--device", "Vulkan0,Vulkan1",
        "-sm", "layer", "--api-key-file", "/k/key.txt", "--metrics", "--flash-attn", "on", "; rm -rf ~",
    ]


def test_api_key_from_env_goes_to_environment_not_argv() -> None:
    cfg = config(server={"port": 8001, "api_key_env": "MY_KEY"})
    command = build_command(cfg, "llama-server", {"MY_KEY": "s3cret"})
    assert all("s3cret" not in arg for arg in command.argv)
    assert command.env["LLAMA_API_KEY"] == "s3cret"
    assert command.redacted_env()["LLAMA_API_KEY"] == "<redacted>"


def test_cuda_devices() -> None:
    cfg = config(gpu={"backend": "cuda", "devices": [1], "layers": 99})
    argv = build_command(cfg, "llama-server", {}).argv
    assert argv[argv.index("--device") + 1] == "CUDA1"
    assert argv[argv.index("-ngl") + 1] == "99"


def test_quoting_per_platform() -> None:
    argv = ["C:/Program Files/llama/llama-server.exe", "-m", "D:/models/a b.gguf"]
    assert quote_command(argv, "windows") == '"C:/Program Files/llama/llama-server.exe" -m "D:/models/a b.gguf"'
    assert quote_command(argv, "linux") == "'C:/Program Files/llama/llama-server.exe' -m 'D:/models/a b.gguf'"


def test_base_url_reaches_wildcard_binds_over_loopback() -> None:
    def url(host: str) -> str:
        return config(server={"port": 8001, "host": host}).server.base_url

    assert url("127.0.0.1") == "http://127.0.0.1:8001"
    assert url("0.0.0.0") == "http://127.0.0.1:8001"
    assert url("::") == "http://[::1]:8001"
    assert url("::1") == "http://[::1]:8001"


def test_a_built_in_chat_template_name_runs_without_jinja_and_jinja_text_as_given() -> None:
    def tail(model: dict[str, object]) -> list[str]:
        return build_command(config(model={"path": "/m/x.gguf", **model}), "llama-server", {}).argv[9:]

    assert tail({"chat_template": "gemma"}) == ["--chat-template", "gemma", "--no-jinja"]
    assert tail({"chat_template": "llama3", "jinja": False}) == ["--chat-template", "llama3", "--no-jinja"]
    assert tail({"chat_template": "chatml"}) == ["--chat-template", "chatml"]  # works under Jinja too
    text = "{% for m in messages %}{{ m.content }}{% endfor %}"
    assert tail({"chat_template": text}) == ["--chat-template", text]
    assert tail({"chat_template": text, "jinja": True}) == ["--chat-template", text, "--jinja"]
    assert tail({"jinja": False}) == ["--no-jinja"]


def test_command_change_says_what_differs_in_a_few_words_and_never_a_variable_value() -> None:
    from llama_orchestrator.config.argv import LaunchCommand, command_change

    running = ["/b/llama-server", "-m", "/m/x.gguf", "-c", "4096", "--metrics"]
    same = LaunchCommand(list(running), {"LLAMA_API_KEY": "k1"})
    assert command_change(running, {"LLAMA_API_KEY": "k1"}, same) is None
    assert command_change(running, None, same) is None  # an adopted process: its env is not compared
    wanted = LaunchCommand(["/b2/llama-server", "-m", "/m/x.gguf", "-c", "8192", "--flash-attn", "on"],
                           {"LLAMA_API_KEY": "k2", "CUDA_VISIBLE_DEVICES": "1"})
    assert command_change(running, {"LLAMA_API_KEY": "k1"}, wanted) == (
        "binary /b/llama-server → /b2/llama-server; -c 4096 --metrics → -c 8192 --flash-attn on; "
        "environment CUDA_VISIBLE_DEVICES, LLAMA_API_KEY")
    assert command_change([*running, "--no-warmup"], None, same) == "removed --no-warmup"
    long_template = LaunchCommand([*running, "--chat-template", "x" * 200])
    assert command_change(running, None, long_template) == f"added --chat-template {'x' * 43}…"
