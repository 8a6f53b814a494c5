<#
.SYNOPSIS
    Run llama-orch from this project's virtual environment, passing every argument through.

.DESCRIPTION
    A thin wrapper: it finds .venv\Scripts\llama-orch.exe beside this scripts folder and runs it
    with exactly the arguments it was given, returning its exit code. All logic lives in the CLI.

.EXAMPLE
    .\scripts\llama.ps1 ps
.EXAMPLE
    .\scripts\llama.ps1 service install --mode logon --dry-run
#>
# No param() block on purpose: $args then holds every argument untouched (including ones that
# look like PowerShell parameters, such as -h or --home).
$ErrorActionPreference = 'Stop'

$projectRoot = Split-Path -Parent $PSScriptRoot
$llamaOrch = Join-Path $projectRoot '.venv\Scripts\llama-orch.exe'

if (-not (Test-Path -LiteralPath $llamaOrch -PathType Leaf)) {
    [Console]::Error.WriteLine("llama-orch was not found at '$llamaOrch'.")
    [Console]::Error.WriteLine("Create the project's environment first, from '$projectRoot':")
    [Console]::Error.WriteLine("    py -3.11 -m venv .venv")
    [Console]::Error.WriteLine("    .venv\Scripts\python.exe -m pip install -e .")
    exit 1
}

& $llamaOrch @args
exit $LASTEXITCODE
