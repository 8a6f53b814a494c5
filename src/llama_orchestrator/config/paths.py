"""Where everything lives: the home directory and the files under it (DESIGN section 3).

Resolution order: `--home`, then `LLAMA_ORCH_HOME`, then the platform's user data directory.
Resolving creates nothing; `HomePaths.ensure()` creates the directories when a command needs them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from llama_orchestrator.errors import HomeError

ENV_HOME = "LLAMA_ORCH_HOME"
ENV_LLAMA_SERVER = "LLAMA_ORCH_LLAMA_SERVER"
APP_NAME = "llama-orchestrator"


@dataclass(frozen=True, slots=True)
class HomePaths:
    """The files and directories of one orchestrator home."""

    home: Path

    @property
    def instances_dir(self) -> Path:
        return self.home / "instances"

    @property
    def models_dir(self) -> Path:
        """Models `llama-orch pull` fetched: models/<owner>/<repo>/<file>."""
        return self.home / "models"

    @property
    def orchestrator_file(self) -> Path:
        return self.home / "orchestrator.json"

    @property
    def state_db(self) -> Path:
        return self.home / "state.db"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def daemon_log(self) -> Path:
        return self.logs_dir / "daemon.log"

    @property
    def lock_file(self) -> Path:
        return self.run_dir / "daemon.lock"

    @property
    def control_file(self) -> Path:
        """JSON with the control API's address, the daemon's pid and its bearer token (mode 0600)."""
        return self.run_dir / "control.json"

    @property
    def secrets_dir(self) -> Path:
        return self.run_dir / "secrets"

    def instance_dir(self, name: str) -> Path:
        return self._inside(self.instances_dir / name)

    def instance_config(self, name: str) -> Path:
        return self.instance_dir(name) / "config.json"

    def instance_log(self, name: str) -> Path:
        return self._inside(self.logs_dir / f"{name}.log")

    def _inside(self, path: Path) -> Path:
        # Names are validated before they get here; this is the second lock on the door.
        resolved = path.resolve()
        if not resolved.is_relative_to(self.home.resolve()):
            raise HomeError(f"refusing path outside the home directory: {path}")
        return path

    def ensure(self) -> HomePaths:
        """Create the home's directories; raise HomeError naming the problem if we cannot write there."""
        try:
            for directory in (self.home, self.instances_dir, self.logs_dir, self.run_dir):
                directory.mkdir(parents=True, exist_ok=True)
            self.run_dir.chmod(0o700)
            with tempfile.NamedTemporaryFile(dir=self.home, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise HomeError(
                f"home directory {self.home} is not usable: {exc.strerror or exc}",
                hint=f"pass --home DIR or set {ENV_HOME} to a directory you can write",
            ) from exc
        return self


def default_home() -> Path:
    """The home without --home or LLAMA_ORCH_HOME (the one whose service entries keep plain names)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False, roaming=False)).expanduser().absolute()


def resolve_home(cli_home: str | os.PathLike[str] | None = None) -> HomePaths:
    """Pick the home directory: the CLI flag, then the environment, then the platform default."""
    if cli_home:
        home = Path(cli_home).expanduser().absolute()
    elif os.environ.get(ENV_HOME):
        home = Path(os.environ[ENV_HOME]).expanduser().absolute()
    else:
        home = default_home()
    if home.exists() and not home.is_dir():
        raise HomeError(f"home path {home} exists and is not a directory")
    return HomePaths(home)
