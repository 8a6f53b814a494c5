"""Carry out a `ServicePlan`: write its files atomically and run its commands through a runner.

The only autostart module with side effects. Commands go through the `CommandRunner` Protocol:
`SubprocessCommandRunner` runs them for real (with a timeout); tests pass a fake that records
argv and returns scripted results, so the service manager is faked at the process boundary.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llama_orchestrator.autostart.spec import Command, RenderedFile, ServicePlan
from llama_orchestrator.errors import AutostartError

DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What one command returned."""

    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandRunner(Protocol):
    """Runs one command and returns its exit code and output; never raises for a non-zero exit."""

    def run(self, argv: Sequence[str]) -> CommandResult: ...


class SubprocessCommandRunner:
    """Run commands with `subprocess.run`, capturing output, bounded by `timeout_s`."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def run(self, argv: Sequence[str]) -> CommandResult:
        """Run `argv` (no shell) and wait at most `timeout_s`.

        Raises:
            AutostartError: when the program is missing or does not finish in time.
        """
        try:
            completed = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self.timeout_s,
                check=False,
                # schtasks/sc.exe would otherwise flash a console when run from pythonw.
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
        except FileNotFoundError as exc:
            raise AutostartError(f"{argv[0]} not found: is this the right platform?") from exc
        except subprocess.TimeoutExpired as exc:
            raise AutostartError(f"{' '.join(argv)} did not finish within {self.timeout_s:g} s") from exc
        return CommandResult(completed.returncode, completed.stdout or "", completed.stderr or "")


def run_commands(
    commands: Iterable[Command], runner: CommandRunner
) -> list[tuple[Command, CommandResult]]:
    """Run commands in order; stop at the first failing `check=True` command.

    Raises:
        AutostartError: naming the command, its exit code and its stderr.
    """
    results: list[tuple[Command, CommandResult]] = []
    for command in commands:
        result = runner.run(command.argv)
        results.append((command, result))
        if command.check and not result.ok:
            detail = (result.stderr or result.stdout).strip() or "no output"
            raise AutostartError(
                f"`{command.display()}` failed with exit code {result.returncode}: {detail}"
            )
    return results


def write_file(file: RenderedFile) -> None:
    """Write one file atomically (temp file in the same directory, then rename) with its mode.

    UTF-16 files get a byte-order mark (Python's "utf-16" codec writes one).

    Raises:
        AutostartError: when the directory cannot be created or the file cannot be written.
    """
    try:
        file.path.parent.mkdir(parents=True, exist_ok=True)
        data = file.content.encode(file.encoding)
        fd, temp_name = tempfile.mkstemp(dir=file.path.parent, prefix=f".{file.path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp_name, file.mode)
            os.replace(temp_name, file.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise AutostartError(f"cannot write {file.path}: {exc.strerror or exc}") from exc


def remove_file(path: Path) -> bool:
    """Delete one installed file; return whether it existed.

    Raises:
        AutostartError: when it exists and cannot be deleted.
    """
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise AutostartError(f"cannot remove {path}: {exc.strerror or exc}") from exc
    return True


def apply(plan: ServicePlan, runner: CommandRunner) -> list[tuple[Command, CommandResult]]:
    """Install: write every file, then run the install commands.

    Raises:
        AutostartError: on the first file or command that fails.
    """
    for file in plan.files:
        write_file(file)
    return run_commands(plan.install_commands, runner)


def remove(plan: ServicePlan, runner: CommandRunner) -> list[tuple[Command, CommandResult]]:
    """Uninstall: run the uninstall commands, delete the files, run the post-uninstall commands.

    Safe to run when nothing is installed.

    Raises:
        AutostartError: on the first file or `check=True` command that fails.
    """
    results = run_commands(plan.uninstall_commands, runner)
    for file in plan.files:
        remove_file(file.path)
    return results + run_commands(plan.post_uninstall_commands, runner)
