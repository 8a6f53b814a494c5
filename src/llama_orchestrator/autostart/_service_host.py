"""The program the Windows SCM starts: make the environment importable, then host the service.

Run as a script by the environment's base interpreter (see `windows_service` for why not the
venv's `python.exe` launcher). Stdlib only until `site.addsitedir` has added the environment's
site-packages; that also runs the `.pth` files there (pywin32's DLL bootstrap, editable installs).
"""

from __future__ import annotations

import argparse
import os
import site
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    """Parse `--home`, `--site-packages`, `--service-name` (another home's than the default: named
    by its hash) and `--env NAME=VALUE`, then run the service until the SCM stops it."""
    parser = argparse.ArgumentParser(prog="llama-orchestrator-service")
    parser.add_argument("--home", required=True)
    parser.add_argument("--site-packages", default=None)
    parser.add_argument("--service-name", default=None)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    for assignment in args.env:
        name, _, value = assignment.partition("=")
        os.environ[name] = value  # the daemon runs in this process and reads them from here
    # Running by path puts this package directory first on sys.path; its module names must not
    # shadow anything, so take it off.
    script_dir = str(Path(__file__).resolve().parent)
    sys.path[:] = [entry for entry in sys.path if str(Path(entry or ".").resolve()) != script_dir]
    if args.site_packages:
        site.addsitedir(args.site_packages)
    from llama_orchestrator.autostart.spec import SERVICE_NAME
    from llama_orchestrator.autostart.windows_service import host_service

    host_service(Path(args.home), args.service_name or SERVICE_NAME)


if __name__ == "__main__":
    main()
