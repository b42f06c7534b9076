"""Audit results: the checks, the chain of stages, and their text and JSON renderings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_LISTED = 8  # names listed at most in one message (changed files, params differences, metric matches)


class AuditError(ValueError):
    """The audit cannot start: no DVC repository, no ``dvc.lock``, or a target that names nothing known."""


@dataclass
class Check:
    """One verification. ``kind``: params | command | deps-list | dep | out | array | provenance | source."""

    kind: str
    stage: str
    subject: str
    ok: bool
    detail: str = ""


@dataclass
class StageLineage:
    """One stage of the chain as locked: command, params values, deps and outs (path, md5, producer)."""

    name: str
    cmd: str
    params: dict[str, Any]
    deps: list[dict[str, Any]]
    outs: list[dict[str, Any]]
    upstream: list[str] = field(default_factory=list)


@dataclass
class AuditReport:
    """Result of :func:`audit`: the chain (target's stage first), what it came from, and every check."""

    target: str
    kind: str
    stage: str
    value: Any
    stages: list[StageLineage]
    psfs: list[dict[str, Any]]
    sources: list[dict[str, Any]]
    code: list[dict[str, Any]]
    checks: list[Check]
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        """The checks that failed, in chain order."""
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form (``udcshield audit --json``)."""
        out = asdict(self)
        out["ok"] = self.ok
        out["failures"] = [asdict(c) for c in self.failures]
        return out

    def to_text(self) -> str:
        """Readable report: chain, params, PSFs, sources, code, and the verdict naming what differs."""
        lines = [f"Lineage of {self.target}" + (f" = {short(self.value)}" if self.kind == "metric" else ""),
                 f"  ({self.kind}, produced by stage '{self.stage}')"]
        for key, value in self.detail.items():
            lines.append(f"  {key}: {short(value, 200)}")
        lines.append("")
        by_stage: dict[str, list[Check]] = {}
        for c in self.checks:
            by_stage.setdefault(c.stage, []).append(c)
        for st in self.stages:
            checks = by_stage.get(st.name, [])
            bad = sum(not c.ok for c in checks)
            lines.append(f"stage {st.name}  [{'ok' if not bad else f'{bad} FAILED'}]"
                         + (f"  <- {', '.join(st.upstream)}" if st.upstream else ""))
            lines.append(f"  cmd: {st.cmd}")
            for key, value in st.params.items():
                lines.append(f"  param {key} = {short(value)}")
            for role, entries in (("dep", st.deps), ("out", st.outs)):
                for e in entries:
                    status = status_of(checks, role, e["path"])
                    made_by = f"  (from {e['producer']})" if e.get("producer") else ""
                    lines.append(f"  {role:3s} {status:4s} {e['path']}  md5 {e.get('md5')}{made_by}")
            for c in checks:
                if c.kind in ("params", "command", "deps-list") and not c.ok:
                    lines.append(f"  FAIL {c.kind}: {c.detail}")
            lines.append("")
        if self.psfs:
            lines.append("PSFs")
            for p in self.psfs:
                lines.append(f"  {p['array']}  shape {p['shape']}  sha256 {p['sha256'][:16]}  "
                             f"wavelengths_nm {p.get('wavelengths_nm')}  [{'ok' if p['ok'] else 'FAILED'}]")
                for role, rec in p.get("inputs", {}).items():
                    lines.append(f"    {role}: {rec.get('path')}  sha256 {str(rec.get('sha256'))[:16]}")
            lines.append("")
        if self.sources:
            lines.append("Source images")
            for s in self.sources:
                lines.append(f"  {s['split']:5s} {s['id']}  {s['origin']}  sha256 {str(s['sha256'])[:16]}  "
                             f"[{s['status']}]")
            lines.append("")
        code_deps = [(d["path"], status_of([c for c in self.checks if c.stage == st.name], "dep", d["path"]))
                      for st in self.stages for d in st.deps if not d.get("producer")]
        if self.code or code_deps:
            lines.append("Code")
            good = sorted({p for p, status in code_deps if status == "ok"})
            bad = sorted({p for p, status in code_deps if status != "ok"})
            lines.append(f"  code dependencies (dvc.lock md5): {len(good)} match"
                         + (f", changed: {', '.join(bad)}" if bad else ""))
            for c in self.code:
                lines.append(f"  {c['artifact']}: package {c.get('package')}, git {c.get('git_commit') or 'n/a'}"
                             f"{' (src modified)' if c.get('src_dirty') else ''}, torch {c.get('torch')}")
            lines.append("")
        counts: dict[str, int] = {}
        for c in self.checks:
            counts[c.kind] = counts.get(c.kind, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        if self.ok:
            lines.append(f"PASS: all {len(self.checks)} checks passed ({summary})")
        else:
            lines.append(f"FAIL: {len(self.failures)} of {len(self.checks)} checks failed ({summary})")
            for c in self.failures:
                lines.append(f"  {c.kind} [{c.stage}] {c.subject}: {c.detail}")
        return "\n".join(lines) + "\n"


def status_of(checks: list[Check], role: str, path: str) -> str:
    """"ok" or "FAIL" for the check of ``role`` (dep, out) on ``path``; "-" when there is none."""
    for c in checks:
        if c.kind == role and c.subject == path:
            return "ok" if c.ok else "FAIL"
    return "-"


def short(value: Any, limit: int = 120) -> str:
    """``value`` as sorted JSON, cut to ``limit`` characters."""
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."
