"""Benchmark: what a stage process spends before its first line of work (imports and the Prefect API).

    python -m benchmarks.startup [--repeats 3] [--load 0]

Each measurement is a fresh process, timed from its start to the end of a no-op Prefect flow run, in a
fresh ``PREFECT_HOME``:

* ``imports``: ``import flows.stages`` (Prefect, torch and the stage runner), no flow run;
* ``temporary_server``: Prefect's own behaviour without an API, as every ``dvc repro`` stage did before
  the shared API: a temporary server started (and stopped) by the process itself;
* ``shared_cold``: the first stage of a ``dvc repro``: :func:`flows.api.ensure_api` starts the shared
  local server;
* ``shared_warm``: every later stage: the shared server is found and reused.

``--load N`` runs N CPU-bound busy processes beside the measurements (the 2-core CI machine with two
other jobs: ``--load 2``). Writes benchmarks/results/startup_cpu[_load<N>].json with the medians.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import environment, write_result

ROOT = Path(__file__).resolve().parents[1]
NOOP_FLOW = "from prefect import flow\nflow(name='noop')(lambda: None)()\n"
CASES = {
    "imports": "import flows.stages\n",
    "temporary_server": "import flows.stages\n" + NOOP_FLOW,
    "shared": "from flows.api import ensure_api\nensure_api()\nimport flows.stages\n" + NOOP_FLOW,
}


def _busy() -> None:
    while True:
        pass


def timed(code: str, home: Path, extra_env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``python -c code`` with ``PREFECT_HOME=home`` and no configured API; NaN when the
    process failed (e.g. Prefect's temporary server did not start in time under load)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(home), "PYTHONPATH": str(ROOT), "PREFECT_LOGGING_LEVEL": "WARNING",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", **(extra_env or {})})
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        print(f"failed after {time.perf_counter() - start:.1f} s: {proc.stderr.strip().splitlines()[-1:]}")
        return float("nan")
    return time.perf_counter() - start


def measure(repeats: int) -> dict[str, list[float]]:
    """Seconds per case and repetition (``shared_cold`` / ``shared_warm`` from one home per repetition)."""
    out: dict[str, list[float]] = {"imports": [], "temporary_server": [], "shared_cold": [], "shared_warm": []}
    idle = {"UDCSHIELD_PREFECT_IDLE": "5"}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out["imports"].append(timed(CASES["imports"], Path(tmp) / "a"))
            out["temporary_server"].append(timed(CASES["temporary_server"], Path(tmp) / "b"))
            out["shared_cold"].append(timed(CASES["shared"], Path(tmp) / "c", idle))
            out["shared_warm"].append(timed(CASES["shared"], Path(tmp) / "c", idle))
            time.sleep(8)  # let the shared server stop (idle 5 s) before its home is removed
    return out


def _gap(medians: dict[str, float | None], case: str) -> float | None:
    """Median seconds of ``case`` beyond the imports alone (None when either never succeeded)."""
    if medians[case] is None or medians["imports"] is None:
        return None
    return round(medians[case] - medians["imports"], 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", type=int, default=0, help="CPU-bound busy processes beside the measurements")
    args = parser.parse_args(argv)
    busy = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(args.load)]
    for p in busy:
        p.start()
    try:
        runs = measure(args.repeats)
    finally:
        for p in busy:
            p.terminate()
    medians = {case: round(statistics.median(v for v in values if v == v), 2) if any(v == v for v in values)
               else None for case, values in runs.items()}
    payload = {"environment": environment("cpu"), "load_processes": args.load, "repeats": args.repeats,
               "seconds": {case: [round(v, 2) if v == v else "failed" for v in values] for case, values in runs.items()},
               "median_s": medians,
               "api_overhead_s": {"before (temporary server per stage)": _gap(medians, "temporary_server"),
                                  "after (shared server, warm)": _gap(medians, "shared_warm")}}
    name = "startup_cpu" + (f"_load{args.load}" if args.load else "")
    print(write_result(name, payload))
    print(payload["median_s"], payload["api_overhead_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
