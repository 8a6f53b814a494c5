"""The configs in examples/ are what users copy first: each must load without an error."""

from __future__ import annotations

import shutil
from pathlib import Path

from llama_orchestrator.config.loader import load_fleet
from llama_orchestrator.config.paths import HomePaths

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_every_example_loads_without_errors(tmp_path: Path) -> None:
    paths = HomePaths(tmp_path / "home")
    paths.instances_dir.mkdir(parents=True)
    shutil.copy(EXAMPLES / "orchestrator.json", paths.home / "orchestrator.json")
    names = sorted(p.parent.name for p in EXAMPLES.glob("*/config.json"))
    for name in names:
        (paths.instances_dir / name).mkdir()
        shutil.copy(EXAMPLES / name / "config.json", paths.instances_dir / name / "config.json")
    # offline: the models and builds named in the examples are not on this machine
    fleet = load_fleet(paths, offline=True, environ={"CODER_API_KEY": "k"}, which=lambda _: None)
    assert names and sorted(fleet.instances) == names
    assert [p for p in fleet.errors] == []
    assert fleet.instances["cuda-coder"].extra_aliases == ("gpt-4o-mini", "claude-haiku-4-5")
