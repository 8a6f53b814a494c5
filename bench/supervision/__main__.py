"""`python -m bench.supervision`: run the supervision benchmarks, print the table, write the JSON.

Sections (each in its own temporary home with its own daemon, stopped at the end):
  idle       B6: daemon RSS with no instances, CPU with 10 idle fake instances
  startup    B1: `up` → ready on the real llama-server vs a bare start, interleaved
  detection  B2/B3: kill -9 and SIGSTOP of a real child, time to ready again, backoff curve
  scale      B7: 100 fake instances at 1 Hz polling: daemon CPU, `llama-orch ps` latency
Every process started here is ended by pid at the end, whatever happened.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.supervision import detection, idle, scale, startup
from bench.supervision.fixtures import (
    Daemon,
    Processes,
    free_port_range,
    instance_config,
    real_server_binary,
    write_fake_wrapper,
    write_instance,
    write_tiny_model,
)
from bench.supervision.report import Report, machine_facts, print_table, results_prefix, write_json

SECTIONS = ("idle", "startup", "detection", "scale")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.supervision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter windows (a smoke run)")
    parser.add_argument("--rounds", type=int, default=10, help="B1 rounds per arm (default 10)")
    parser.add_argument("--instances", type=int, default=100, help="B7 instance count (default 100)")
    parser.add_argument("--profile", action="store_true", help="profile `ps` even when it meets its target")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary homes (logs) for inspection")
    args = parser.parse_args(argv)
    args.sections = [s for s in args.only.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    args.idle_window = 8.0 if args.quick else 20.0
    args.cpu_window = 10.0 if args.quick else 30.0
    args.ps_runs = 5 if args.quick else 10
    if args.quick:
        args.rounds = min(args.rounds, 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-supervision-"))
    processes = Processes()
    report = Report(facts=machine_facts())
    report.facts["args"] = {k: v for k, v in vars(args).items() if k != "sections"} | {"sections": args.sections}
    prefix = results_prefix()
    daemons: list[Daemon] = []
    started = time.monotonic()
    failed = False

    def new_daemon(label: str) -> Daemon:
        daemon = Daemon(work / f"home-{label}", processes)
        daemons.append(daemon)
        daemon.start()
        return daemon

    def finish(daemon: Daemon) -> None:
        daemon.stop()
        daemons.remove(daemon)

    try:
        model = str(write_tiny_model(work / "tiny.gguf"))
        fake = str(write_fake_wrapper(work))
        real = real_server_binary() if {"startup", "detection"} & set(args.sections) else ""
        report.facts["llama_server"] = real
        for section in args.sections:
            print(f"\n== {section} ==", flush=True)
            t0 = time.monotonic()
            try:
                if section == "idle":
                    daemon = new_daemon("idle")
                    idle.run(report, daemon, fake, model, free_port_range(10), 10, args.idle_window)
                elif section == "startup":
                    daemon = new_daemon("startup")
                    port = free_port_range(1)
                    write_instance(daemon.paths, instance_config(startup.NAME, binary=real, model=model, port=port,
                                                                 autostart=False))
                    startup.run(report, daemon, port, args.rounds, work, processes)
                elif section == "detection":
                    daemon = new_daemon("detection")
                    for config in detection.configs(real, fake, model, free_port_range(3)):
                        write_instance(daemon.paths, config)
                    trials = 3 if args.quick else 5
                    detection.run(report, daemon, crash_trials=trials, hang_trials=2 if args.quick else 3,
                                  backoff_crashes=4)
                elif section == "scale":
                    daemon = new_daemon("scale")
                    scale.run(report, daemon, fake, model, free_port_range(args.instances), args.instances,
                              args.cpu_window, args.ps_runs, args.profile, prefix)
                finish(daemon)
            except Exception as exc:  # one broken section must not hide the others' figures
                failed = True
                traceback.print_exc()
                report.notes.append(f"{section}: failed: {exc.__class__.__name__}: {exc}")
            report.raw.setdefault("section_seconds", {})[section] = round(time.monotonic() - t0, 1)
    finally:
        for daemon in list(daemons):
            daemon.stop()
        leftovers = processes.end_all()
        if leftovers:
            report.notes.append(f"cleanup had to end {len(leftovers)} process(es) the daemon left: {leftovers}")
        if args.keep_home:
            print(f"homes kept under {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report.facts["loadavg_after"] = os.getloadavg()
    report.facts["total_seconds"] = round(time.monotonic() - started, 1)
    print_table(report)
    path = write_json(report, prefix)
    print(f"\nresults: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path} "
          f"({report.facts['total_seconds']} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
