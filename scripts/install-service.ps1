<#
.SYNOPSIS
    Install (or remove) llama-orchestrator's autostart entry on Windows.

.DESCRIPTION
    Checks for administrator rights when the chosen mode needs them, then calls
    `llama-orch service install` (or `uninstall`) through scripts\llama.ps1. Everything else -
    the task XML, the service commands, the recovery actions - is done by the CLI.

    Modes:
      logon (default)  a scheduled task that starts at your logon, in your desktop session
                       (where Vulkan and consumer GPU drivers work); no admin rights needed.
      boot             a scheduled task that starts at boot as LocalSystem; needs admin.
      -WindowsService  a real Windows service (delayed automatic start, restart on failure);
                       needs admin.

.PARAMETER Mode
    logon or boot (scheduled task trigger). Ignored with -WindowsService.
.PARAMETER WindowsService
    Install a Windows service instead of a scheduled task.
.PARAMETER OrchestratorHome
    The orchestrator home (passed as --home). Give it when an administrator account other than
    yours elevates the prompt, so the daemon uses your home and not the administrator's.
.PARAMETER DryRun
    Print every file and command; change nothing.
.PARAMETER Uninstall
    Remove the task or service instead of installing it.

.EXAMPLE
    .\scripts\install-service.ps1
.EXAMPLE
    .\scripts\install-service.ps1 -WindowsService -OrchestratorHome "$env:LOCALAPPDATA\llama-orchestrator"
.EXAMPLE
    .\scripts\install-service.ps1 -Mode boot -DryRun
#>
[CmdletBinding()]
param(
    [ValidateSet('logon', 'boot')]
    [string]$Mode = 'logon',
    [switch]$WindowsService,
    # Not $Home: that is PowerShell's read-only automatic variable.
    [Alias('Home')]
    [string]$OrchestratorHome,
    [switch]$DryRun,
    [switch]$Uninstall
)
$ErrorActionPreference = 'Stop'

function Test-Administrator {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal($identity)
    return $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
}

$needsAdmin = ($WindowsService -or $Mode -eq 'boot') -and -not $DryRun
if ($needsAdmin -and -not (Test-Administrator)) {
    [Console]::Error.WriteLine('This mode needs administrator rights: open PowerShell with "Run as administrator" and run this script again.')
    [Console]::Error.WriteLine('(-Mode logon without -WindowsService needs no admin rights.)')
    exit 8  # the CLI's exit code for autostart errors
}

$cliArgs = @()
if ($OrchestratorHome) {
    $cliArgs += @('--home', $OrchestratorHome)
}
$cliArgs += 'service'
if ($Uninstall) {
    $cliArgs += 'uninstall'
} else {
    $cliArgs += @('install', '--mode', $Mode)
}
if ($WindowsService) {
    $cliArgs += '--windows-service'
}
if ($DryRun) {
    $cliArgs += '--dry-run'
}

& (Join-Path $PSScriptRoot 'llama.ps1') @cliArgs
exit $LASTEXITCODE
