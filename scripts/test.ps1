# Windows equivalent of scripts/test: set up .venv, install, then ruff, mypy, the layer contract
# and the whole pytest suite. llama-server is not built on Windows: point LLAMA_SERVER_BIN at a
# llama-server.exe of your own (a release zip, winget or your build) for the real-server tests.
#   powershell -ExecutionPolicy Bypass -File scripts\test.ps1 [pytest arguments]
$ErrorActionPreference = "Stop"
$root = Split-Path -Parent $PSScriptRoot
Set-Location $root

$python = (Get-Command py -ErrorAction SilentlyContinue)
if (-not (Test-Path "$root\.venv\Scripts\python.exe")) {
    if ($python) { & py -3.11 -m venv "$root\.venv" } else { & python -m venv "$root\.venv" }
    if ($LASTEXITCODE -ne 0) { throw "creating .venv failed: install Python 3.11 or newer from python.org" }
}
$venvPython = "$root\.venv\Scripts\python.exe"
& $venvPython -m pip install --quiet --disable-pip-version-check -e "$root[dev]"
if ($LASTEXITCODE -ne 0) { throw "installing llama-orchestrator[dev] failed" }

if (-not $env:LLAMA_SERVER_BIN) {
    $found = Get-Command llama-server -ErrorAction SilentlyContinue
    if ($found) { $env:LLAMA_SERVER_BIN = $found.Source }
    else { throw "set LLAMA_SERVER_BIN to your llama-server.exe (the real-server tests are not optional)" }
}

Write-Host "== ruff";  & "$root\.venv\Scripts\ruff.exe" check src tests bench; if ($LASTEXITCODE) { exit $LASTEXITCODE }
Write-Host "== mypy";  & "$root\.venv\Scripts\mypy.exe"; if ($LASTEXITCODE) { exit $LASTEXITCODE }
Write-Host "== layer contract"; & "$root\.venv\Scripts\lint-imports.exe" --no-cache; if ($LASTEXITCODE) { exit $LASTEXITCODE }
Write-Host "== pytest"; & "$root\.venv\Scripts\pytest.exe" @args
exit $LASTEXITCODE
