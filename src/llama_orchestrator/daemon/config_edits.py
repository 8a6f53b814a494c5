"""The instance configs as they are on disk now: what `ps` and `inspect` compare each running
process's command line with, so an edit shows before it is applied.

Reading them changes nothing: the daemon still applies configs at a command (`up`, `start`,
`restart`, `reload`). They are parsed again only when a file's size or modification time changed,
so a status request costs one `stat` per file.
"""

from __future__ import annotations

from collections.abc import Mapping

from llama_orchestrator.config.drift import invalid_config
from llama_orchestrator.config.loader import load_fleet
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.config.paths import HomePaths

Stamp = tuple[tuple[str, int, int], ...]


class ConfigsOnDisk:
    def __init__(self, paths: HomePaths, environ: Mapping[str, str]) -> None:
        self.paths = paths
        self.environ = environ
        self._seen: Stamp | None = None
        self._configs: Mapping[str, InstanceConfig] = {}
        self._names: frozenset[str] = frozenset()
        self._invalid: Mapping[str, str] = {}

    def current(self) -> Mapping[str, InstanceConfig]:
        """Each valid instance config by name (an invalid one is left out: nothing to compare)."""
        stamp = self._stamp()
        if stamp != self._seen:
            self._seen = stamp
            fleet = load_fleet(self.paths, offline=True, environ=self.environ)
            self._configs, self._names = fleet.instances, frozenset(fleet.config_files)
            self._invalid = {name: invalid_config(fleet.errors_in(name))
                             for name in fleet.config_files if name not in fleet.instances}
        return self._configs

    def names(self) -> frozenset[str]:
        """The instances with a config file, valid or not (as of the last `current()`)."""
        return self._names

    def invalid(self, name: str) -> str | None:
        """Why the instance's file on disk is not a valid config (as of the last `current()`), or None."""
        return self._invalid.get(name)

    def _stamp(self) -> Stamp:
        files = [self.paths.orchestrator_file]
        if self.paths.instances_dir.is_dir():
            files += self.paths.instances_dir.glob("*/config.json")
        found = []
        for path in files:
            try:
                stat = path.stat()
            except OSError:
                continue
            found.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(sorted(found))
