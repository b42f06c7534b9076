"""Scheduled runs: ``dvc repro`` in the repository as one Prefect flow, plus the robustness table.

Lineage stays in DVC: the flow runs ``dvc repro`` as a subprocess in the repository (so ``dvc.lock``
records what was built from what, exactly as by hand), streams its output line by line to the Prefect
run log, fails when it exits non-zero, and then publishes the robustness table as the markdown
artifact ``udcshield-robustness``: mean PSNR per restorer x defense x attack x budget from
``data/evaluate/records.csv`` (without transfer cells), followed by the defense sections of the report
(defense at a glance, adaptive attacks), rendered from the report data ``data/report/report.json`` by the
report's own markdown view when the report exists.

Deployed with a cron schedule by ``flows/deploy.py`` (``flow.serve``) or ``prefect.yaml`` (work pool
and worker).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tasks.common import TASK_OPTIONS
from udcshield.evaluation.records import read_records_csv
from udcshield.evaluation.tables import markdown_table
from udcshield.pipeline.report_markdown import sections_markdown

ARTIFACT_KEY = "udcshield-robustness"
RECORDS = Path("data/evaluate/records.csv")
REPORT = Path("data/report/report.md")
REPORT_DATA = Path("data/report/report.json")
# Sections of the report data rendered into the artifact, in this order (names of
# udcshield.pipeline.report_markdown.sections_markdown).
REPORT_SECTIONS = ("glance", "adaptive")
# Transfer cells (an attack crafted on another restorer) carry this marker in their attack name.
TRANSFER_MARK = "@"
# A DVC target: a stage name, optionally prefixed by a dvc.yaml path (``sub/dvc.yaml:stage``).
_TARGET = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./:@-]*$")
_TAIL_LINES = 40


class ReproError(RuntimeError):
    """``dvc repro`` failed, or the repository or its results are not where they should be."""


def check_repo(repo_dir: str | os.PathLike[str]) -> Path:
    """Resolve ``repo_dir`` and check that it is a DVC project (has ``dvc.yaml`` and ``.dvc/``).

    Raises ReproError naming the directory otherwise.
    """
    repo = Path(repo_dir).expanduser().resolve()
    if not repo.is_dir():
        raise ReproError(f"repo_dir {str(repo_dir)!r} is not a directory")
    for name in ("dvc.yaml", ".dvc"):
        if not (repo / name).exists():
            raise ReproError(f"repo_dir {str(repo)!r} is not a DVC project: {name} is missing")
    return repo


def check_targets(targets: list[str] | None) -> list[str]:
    """Validate DVC targets (stage names, ``path/dvc.yaml:stage``); none means the whole pipeline.

    Raises ReproError naming a target that is not a plain stage name (e.g. one starting with ``-``,
    which ``dvc`` would read as an option).
    """
    out = list(targets or [])
    for target in out:
        if not isinstance(target, str) or not _TARGET.match(target):
            raise ReproError(f"targets: {target!r} is not a DVC stage name")
    return out


def repro_command(targets: list[str]) -> list[str]:
    """The ``dvc repro`` command line, run with the interpreter of this environment (``python -m dvc``)."""
    return [sys.executable, "-m", "dvc", "repro", *targets]


def subprocess_env() -> dict[str, str]:
    """Environment of the ``dvc repro`` subprocess: this one, with this interpreter's ``bin`` first on
    PATH so that the stages' ``python -m flows <stage>`` run in the same environment."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    return env


@task(name="dvc-repro", **TASK_OPTIONS)
def run_dvc_repro(repo_dir: str, targets: list[str]) -> int:
    """Run ``dvc repro [targets]`` in ``repo_dir``, each output line to the run log; returns 0.

    Raises ReproError with the exit status and the last lines of output when it exits non-zero.
    """
    logger = get_run_logger()
    cmd = repro_command(targets)
    logger.info("running %s in %s", " ".join(cmd[1:]), repo_dir)
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    with subprocess.Popen(cmd, cwd=repo_dir, env=subprocess_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, bufsize=1,
                          errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            logger.info("dvc: %s", line)
        status = proc.wait()
    if status != 0:
        last = "\n".join(tail)
        raise ReproError(f"dvc repro exited with status {status} in {repo_dir}; last output:\n{last}")
    return status


def read_report_data(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The report data written by the report stage; ValueError naming the file when it is not a JSON object."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def report_sections(data: dict[str, Any], names: tuple[str, ...] = REPORT_SECTIONS) -> list[str]:
    """The named sections of the report data as markdown (the report's own markdown view), in the order of
    ``names``; empty ones are skipped. ValueError naming a section the data lacks."""
    try:
        return sections_markdown(data, names)
    except KeyError as exc:
        raise ValueError(f"report data: no {exc.args[0]!r} entry for sections {list(names)}") from None


def robustness_markdown(repo_dir: str | os.PathLike[str]) -> str:
    """The robustness table of a finished run in ``repo_dir`` as markdown.

    Mean PSNR (dB) per restorer x defense, clean then each attack at each budget (units of 1/256), from
    ``data/evaluate/records.csv``; then the defense sections of the report data ``data/report/report.json``
    if present. Raises ReproError when neither file exists, ValueError (naming the file) for a malformed
    records or report data file.
    """
    repo = Path(repo_dir)
    records_path, report_path = repo / RECORDS, repo / REPORT_DATA
    if not records_path.exists() and not report_path.exists():
        raise ReproError(f"no results to publish: neither {records_path} nor {report_path} exists")
    parts = ["# udcshield robustness", ""]
    if records_path.exists():
        records = [r for r in read_records_csv(records_path) if TRANSFER_MARK not in r["attack"]]
        parts += ["PSNR (dB), mean over test images; budgets in units of 1/256 "
                  f"(from `{RECORDS.as_posix()}`).", "", markdown_table(records, metric="psnr")]
    if report_path.exists():
        parts += [section + "\n" for section in report_sections(read_report_data(report_path))]
        parts.append(f"Full report: `{REPORT.as_posix()}`; lineage: `dvc.lock`.")
    return "\n".join(parts).rstrip() + "\n"


@flow(name="repro", log_prints=True)
def repro_flow(repo_dir: str = ".", targets: list[str] | None = None) -> dict[str, Any]:
    """Run ``dvc repro`` in ``repo_dir`` (all stages, or ``targets``) and publish the robustness table
    as the markdown artifact ``udcshield-robustness``. Returns {repo_dir, artifact_key, artifact_id}."""
    repo = check_repo(repo_dir)
    stages = check_targets(targets)
    run_dvc_repro(str(repo), stages)
    markdown = robustness_markdown(repo)
    artifact_id = create_markdown_artifact(
        markdown=markdown, key=ARTIFACT_KEY,
        description="Robustness table of the latest scheduled dvc repro (PSNR dB).")
    return {"repo_dir": str(repo), "artifact_key": ARTIFACT_KEY, "artifact_id": str(artifact_id)}
