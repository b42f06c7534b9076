"""Lineage audit: from an artifact, a stored array or a metric back to params, PSFs, source images and code.

``audit(target, root)`` resolves ``target`` (a path under the DVC repository ``root``, an array inside a
zarr store such as ``data/attack/adversarial.zarr/<array>``, or a metric key of a metrics file declared in
``dvc.yaml``), finds the stage that produced it in ``dvc.lock`` and walks the stages upstream through their
dependencies. On that chain it verifies:

1. DVC hashes: every dependency and output matches its md5 in ``dvc.lock``; every stage's params in
   ``params.yaml`` equal the values locked when it ran; its command, dependency and output lists in
   ``dvc.yaml`` equal the locked ones.
2. Store digests: every array of every zarr store on the chain matches the SHA-256 recorded in the store's
   attributes when it was written (:func:`udcshield.store.zarr_io.verify_array`).
3. Provenance digests: the input artifacts recorded in stores' and checkpoints' provenance still have the
   recorded ``tree_sha256``, and the source images recorded by ``simulate`` still hash as recorded.

DVC hashes are computed here, the way DVC 3 (dvc-data) computes them, rather than by calling ``dvc status``:
a file's hash is the md5 of its bytes; a folder's hash is the md5 of
``json.dumps(sorted([{"md5": <file md5>, "relpath": <posix path>}, ...]), sort_keys=True)`` followed by
``.dir``, over the files in the folder not excluded by ``.dvcignore``. Computing them needs no DVC import in
the library, and when DVC's cache holds the folder's manifest (``.dvc/cache/files/md5/xx/yyyy.dir``) the
audit names the changed files inside a folder, which ``dvc status`` does not. The test suite checks the
computation against the ``dvc.lock`` written by a real ``dvc repro``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from udcshield.store.hashing import array_sha256, file_sha256, tree_sha256
from udcshield.store.zarr_io import StoreError, open_store, verify_array

__all__ = ["AuditError", "Check", "StageLineage", "AuditReport", "dvc_md5", "audit", "find_root"]

_CHUNK = 1 << 20
_MAX_LISTED = 8


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
        lines = [f"Lineage of {self.target}" + (f" = {_short(self.value)}" if self.kind == "metric" else ""),
                 f"  ({self.kind}, produced by stage '{self.stage}')"]
        for key, value in self.detail.items():
            lines.append(f"  {key}: {_short(value, 200)}")
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
                lines.append(f"  param {key} = {_short(value)}")
            for role, entries in (("dep", st.deps), ("out", st.outs)):
                for e in entries:
                    status = _status(checks, role, e["path"])
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
        code_deps = [(d["path"], _status([c for c in self.checks if c.stage == st.name], "dep", d["path"]))
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


# ----------------------------------------------------------------------------------------------- hashing
def _md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class _Ignore:
    """The root ``.dvcignore`` (gitignore syntax), as DVC applies it to folders it hashes."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.spec = None
        path = root / ".dvcignore" if root is not None else None
        if path is not None and path.is_file():
            patterns = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            if patterns:
                import pathspec

                self.spec = pathspec.GitIgnoreSpec.from_lines(patterns)

    def __call__(self, path: Path) -> bool:
        if self.spec is None or self.root is None:
            return False
        rel = path.relative_to(self.root).as_posix()
        return self.spec.match_file(rel + ("/" if path.is_dir() else ""))


def _dir_listing(path: Path, ignore: _Ignore) -> list[dict[str, str]]:
    entries = []
    for dirpath, dirnames, filenames in os.walk(path):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not ignore(base / d))
        for name in filenames:
            f = base / name
            if not ignore(f):
                entries.append({"md5": _md5_file(f), "relpath": f.relative_to(path).as_posix()})
    return sorted(entries, key=lambda e: e["relpath"])


def dvc_md5(path: str | Path, root: str | Path | None = None) -> str:
    """DVC 3 md5 of a file (hex) or of a folder (hex + ``.dir``), as recorded in ``dvc.lock``.

    ``root`` is the repository whose ``.dvcignore`` applies (default: no ignore rules).
    Raises FileNotFoundError when ``path`` does not exist.
    """
    path = Path(path)
    if path.is_file():
        return _md5_file(path)
    if not path.is_dir():
        raise FileNotFoundError(f"cannot hash missing path: {path}")
    ignore = _Ignore(Path(root) if root is not None else None)
    listing = _dir_listing(path, ignore)
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


# ------------------------------------------------------------------------------------------- repository
def find_root(start: str | Path = ".") -> Path:
    """The nearest folder at or above ``start`` holding ``dvc.yaml``; AuditError if none."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    raise AuditError(f"no dvc.yaml at or above {here}; run the audit inside the pipeline's repository")


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader, also reading YAML 1.2 floats such as ``1e-06`` as numbers.

    DVC writes ``dvc.lock`` with a YAML 1.2 library, which prints small floats without a dot; plain PyYAML
    (YAML 1.1) would read them back as strings and every such params value would look changed.
    """


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def _load_yaml(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        hint = " (run `dvc repro` first)" if path.name == "dvc.lock" else ""
        raise AuditError(f"{what} not found: {path}{hint}")
    try:
        data = _yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise AuditError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        raise AuditError(f"{path} has no 'stages' mapping")
    return data


def _is_within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _out_paths(stage: dict[str, Any]) -> list[str]:
    """Output paths of a dvc.yaml stage: outs, metrics and plots (each a str or a one-key mapping)."""
    paths = []
    for key in ("outs", "metrics", "plots"):
        for entry in stage.get(key, []) or []:
            paths.append(entry if isinstance(entry, str) else next(iter(entry)))
    return paths


def _dep_paths(stage: dict[str, Any]) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", []) or []]


def _lookup(data: Any, dotted: str) -> tuple[bool, Any]:
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _diff_leaves(locked: Any, current: Any, where: str, out: list[str]) -> None:
    if isinstance(locked, dict) and isinstance(current, dict):
        for key in sorted(set(locked) | set(current), key=str):
            _diff_leaves(locked.get(key, "<absent>"), current.get(key, "<absent>"), f"{where}.{key}", out)
    elif isinstance(locked, list) and isinstance(current, list) and len(locked) == len(current):
        for i, (a, b) in enumerate(zip(locked, current)):
            _diff_leaves(a, b, f"{where}[{i}]", out)
    elif locked != current:
        out.append(f"{where}: dvc.lock {_short(locked)} != params {_short(current)}")


def _status(checks: list[Check], role: str, path: str) -> str:
    for c in checks:
        if c.kind == role and c.subject == path:
            return "ok" if c.ok else "FAIL"
    return "-"


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------------------- audit
class _Auditor:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.spec = _load_yaml(root / "dvc.yaml", "dvc.yaml")["stages"]
        self.lock = _load_yaml(root / "dvc.lock", "dvc.lock")["stages"]
        self.ignore = _Ignore(root)
        self.md5_cache: dict[str, str | None] = {}
        self.checks: list[Check] = []
        self.stores_done: set[str] = set()
        self.psfs: list[dict[str, Any]] = []
        self.sources: list[dict[str, Any]] = []
        self.code: list[dict[str, Any]] = []

    # -- resolution ---------------------------------------------------------------------------------
    def rel(self, target: str) -> str:
        p = Path(target)
        if p.is_absolute():
            try:
                return p.resolve().relative_to(self.root).as_posix()
            except ValueError:
                raise AuditError(f"{target} is outside the repository {self.root}") from None
        return Path(os.path.normpath(target)).as_posix()

    def producer(self, path: str) -> str | None:
        """Stage whose locked (or declared) output is ``path`` or holds it."""
        for name, stage in self.lock.items():
            if any(_is_within(path, o["path"]) for o in stage.get("outs", [])):
                return name
        for name, stage in self.spec.items():
            if any(_is_within(path, o) for o in _out_paths(stage)):
                return name
        return None

    def resolve(self, target: str) -> tuple[str, str, str, Any]:
        """(kind, canonical target, producing stage, metric value) for a path, store array or metric key."""
        rel = self.rel(target)
        store, array = self.split_store_path(rel)
        if store is not None and array:
            stage = self.producer(store)
            if stage is None:
                raise AuditError(f"no stage in dvc.yaml produces {store}")
            return "array", f"{store}/{array}", stage, None
        if (self.root / rel).exists() or self.producer(rel):
            stage = self.producer(rel)
            if stage is None:
                raise AuditError(f"{rel} is not an output of any stage in dvc.yaml (nothing to trace)")
            return "path", rel, stage, None
        return self.resolve_metric(target)

    def split_store_path(self, rel: str) -> tuple[str | None, str]:
        """('data/x.zarr', 'a/b') for a path inside a zarr store (array must exist), else (None, '')."""
        parts = rel.split("/")
        for i in range(len(parts), 0, -1):
            head = "/".join(parts[:i])
            if head.endswith(".zarr") and (self.root / head / "zarr.json").is_file():
                name = "/".join(parts[i:])
                if not name:
                    return head, ""
                try:
                    group = open_store(self.root / head)
                except StoreError as exc:
                    raise AuditError(str(exc)) from None
                if name not in group:
                    raise AuditError(f"{head} has no array or group named {name!r}")
                return head, name
        return None, ""

    def metrics_files(self) -> list[tuple[str, str]]:
        return [(name, m if isinstance(m, str) else next(iter(m)))
                for name, stage in self.spec.items() for m in stage.get("metrics", []) or []]

    def resolve_metric(self, target: str) -> tuple[str, str, str, Any]:
        files = self.metrics_files()
        key = target
        if ":" in target:
            head, tail = target.split(":", 1)
            chosen = [(s, f) for s, f in files if f == self.rel(head)]
            if chosen:
                files, key = chosen, tail
        found = []
        for stage, fname in files:
            path = self.root / fname
            if not path.is_file():
                continue
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise AuditError(f"metrics file {fname} is not valid JSON: {exc}") from None
            for keys, value in _match_key(data, key):
                found.append((stage, fname, keys, value))
        if not found:
            declared = ", ".join(f for _, f in files) or "none"
            raise AuditError(f"{target!r} is neither a path in the repository, an array of a zarr store, nor a "
                             f"key of a metrics file (declared: {declared})")
        if len(found) > 1:
            options = ", ".join(f"{f}:{'.'.join(k)}" for _, f, k, _ in found[:_MAX_LISTED])
            raise AuditError(f"metric key {target!r} is ambiguous: {options}; prefix it with '<metrics file>:'")
        stage, fname, keys, value = found[0]
        return "metric", f"{fname}:{'.'.join(keys)}", stage, value

    # -- chain --------------------------------------------------------------------------------------
    def chain(self, start: str) -> list[StageLineage]:
        order, queue, seen = [], [start], {start}
        while queue:
            name = queue.pop(0)
            if name not in self.lock:
                raise AuditError(f"stage {name!r} is not in dvc.lock; run `dvc repro {name}` first")
            locked = self.lock[name]
            deps = []
            upstream: list[str] = []
            for d in locked.get("deps", []):
                producer = self.dep_producer(d["path"])
                deps.append({"path": d["path"], "md5": d.get("md5"), "producer": producer})
                if producer and producer not in upstream:
                    upstream.append(producer)
            outs = [{"path": o["path"], "md5": o.get("md5")} for o in locked.get("outs", [])]
            params = {k: v for values in (locked.get("params") or {}).values() for k, v in values.items()}
            order.append(StageLineage(name, locked.get("cmd", ""), params, deps, outs, upstream))
            for up in upstream:
                if up not in seen:
                    seen.add(up)
                    queue.append(up)
        return order

    def dep_producer(self, path: str) -> str | None:
        for name, stage in self.lock.items():
            for o in stage.get("outs", []):
                if _is_within(path, o["path"]) or _is_within(o["path"], path):
                    return name
        return None

    # -- checks -------------------------------------------------------------------------------------
    def add(self, kind: str, stage: str, subject: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(kind, stage, subject, ok, detail))

    def actual_md5(self, path: str) -> str | None:
        if path not in self.md5_cache:
            full = self.root / path
            self.md5_cache[path] = dvc_md5(full, self.root) if full.exists() else None
        return self.md5_cache[path]

    def check_stage(self, st: StageLineage) -> None:
        declared = self.spec.get(st.name)
        if declared is None:
            self.add("command", st.name, "dvc.yaml", False, f"stage {st.name!r} is in dvc.lock but not in dvc.yaml")
        else:
            cmd = declared.get("cmd")
            cmd = " && ".join(cmd) if isinstance(cmd, list) else cmd
            self.add("command", st.name, "cmd", cmd == st.cmd,
                     "" if cmd == st.cmd else f"dvc.yaml runs {cmd!r}, dvc.lock recorded {st.cmd!r}")
            for what, want, have in (("deps", _dep_paths(declared), [d["path"] for d in st.deps]),
                                     ("outs", _out_paths(declared), [o["path"] for o in st.outs])):
                missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
                ok = not missing and not extra
                self.add("deps-list", st.name, what, ok,
                         "" if ok else f"dvc.yaml {what} not in dvc.lock: {missing}; locked but not declared: {extra}")
        self.check_params(st)
        for role, entries in (("dep", st.deps), ("out", st.outs)):
            for e in entries:
                self.check_hash(st.name, role, e["path"], e.get("md5"))

    def check_params(self, st: StageLineage) -> None:
        locked_params = self.lock[st.name].get("params") or {}
        for fname, values in locked_params.items():
            path = self.root / fname
            if not path.is_file():
                self.add("params", st.name, fname, False, f"params file {fname} is missing")
                continue
            try:
                current = _yaml(path.read_text()) or {}
            except yaml.YAMLError as exc:
                self.add("params", st.name, fname, False, f"params file {fname} is not valid YAML: {exc}")
                continue
            for key, locked in values.items():
                present, now = _lookup(current, key)
                if not present:
                    self.add("params", st.name, f"{fname}:{key}", False,
                             f"params mismatch: {key} is in dvc.lock but missing from {fname}")
                    continue
                diffs: list[str] = []
                _diff_leaves(locked, now, key, diffs)
                shown = "; ".join(diffs[:_MAX_LISTED]) + (" ..." if len(diffs) > _MAX_LISTED else "")
                self.add("params", st.name, f"{fname}:{key}", not diffs,
                         f"params mismatch (changed without `dvc repro`): {shown}" if diffs else "")

    def check_hash(self, stage: str, role: str, path: str, locked: str | None) -> None:
        actual = self.actual_md5(path)
        if actual is None:
            self.add(role, stage, path, False, f"{path} is missing (dvc.lock md5 {locked})")
        elif actual != locked:
            changed = self.changed_files(path, locked)
            self.add(role, stage, path, False,
                     f"md5 {actual} differs from dvc.lock {locked}" + (f"; changed: {changed}" if changed else ""))
        else:
            self.add(role, stage, path, True)

    def changed_files(self, path: str, locked: str | None) -> str:
        """Files of folder ``path`` that differ from the manifest in DVC's cache (when it is there)."""
        if not locked or not locked.endswith(".dir"):
            return ""
        manifest = self.root / ".dvc" / "cache" / "files" / "md5" / locked[:2] / locked[2:]
        if not manifest.is_file():
            return ""
        try:
            before = {e["relpath"]: e["md5"] for e in json.loads(manifest.read_text())}
        except (json.JSONDecodeError, KeyError, TypeError):
            return ""
        now = {e["relpath"]: e["md5"] for e in _dir_listing(self.root / path, self.ignore)}
        names = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        listed = ", ".join(f"{path}/{n}" for n in names[:_MAX_LISTED])
        return listed + (f" (+{len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")

    def stores_under(self, path: str) -> list[str]:
        full = self.root / path
        if not full.is_dir():
            return []
        if (full / "zarr.json").is_file() and full.name.endswith(".zarr"):
            return [path]
        found = []
        for dirpath, dirnames, _ in os.walk(full):
            base = Path(dirpath)
            for d in sorted(dirnames):
                if d.endswith(".zarr") and (base / d / "zarr.json").is_file():
                    found.append((base / d).relative_to(self.root).as_posix())
            dirnames[:] = [d for d in dirnames if not d.endswith(".zarr")]
        return sorted(found)

    def check_store(self, stage: str, store: str) -> None:
        if store in self.stores_done:
            return
        self.stores_done.add(store)
        try:
            group = open_store(self.root / store)
        except StoreError as exc:
            self.add("array", stage, store, False, str(exc))
            return
        attrs = dict(group.attrs)
        recorded = attrs.get("array_sha256", {}) or {}
        present = sorted(name for name, node in group.members(max_depth=None) if hasattr(node, "dtype"))
        for name in present:
            subject = f"{store}/{name}"
            if name not in recorded:
                self.add("array", stage, subject, False, f"{subject}: array has no recorded digest")
                continue
            try:
                verify_array(self.root / store, name)
                self.add("array", stage, subject, True)
            except StoreError as exc:
                self.add("array", stage, subject, False, f"altered array: {exc}")
        for name in sorted(set(recorded) - set(present)):
            self.add("array", stage, f"{store}/{name}", False, f"{store}/{name}: recorded but missing from the store")
        self.check_provenance(stage, store, attrs)
        if attrs.get("code"):
            self.code.append({"artifact": store, **attrs["code"], "torch": (attrs.get("libraries") or {}).get("torch")})
        if "psf" in recorded:
            self.psfs.append({"array": f"{store}/psf", "shape": list(group["psf"].shape),
                              "sha256": recorded["psf"], "wavelengths_nm": group["psf"].attrs.get("wavelengths_nm"),
                              "inputs": attrs.get("inputs", {}),
                              "ok": all(c.ok for c in self.checks if c.subject == f"{store}/psf")})
        for src in attrs.get("sources", []) or []:
            self.check_source(stage, attrs.get("split", store), src)

    def check_provenance(self, stage: str, artifact: str, prov: dict[str, Any]) -> None:
        for role, rec in (prov.get("inputs") or {}).items():
            if not isinstance(rec, dict) or "path" not in rec or "sha256" not in rec:
                continue
            path = Path(rec["path"]) if Path(rec["path"]).is_absolute() else self.root / rec["path"]
            subject = f"{artifact} <- {role} ({rec['path']})"
            if not path.exists():
                self.add("provenance", stage, subject, False, f"recorded input {rec['path']} is missing")
                continue
            actual = tree_sha256(path)
            self.add("provenance", stage, subject, actual == rec["sha256"],
                     "" if actual == rec["sha256"] else
                     f"{rec['path']} sha256 {actual[:12]} differs from {rec['sha256'][:12]} recorded in {artifact}")

    def check_checkpoints(self, stage: str, path: str) -> None:
        full = self.root / path
        configs = [full] if full.name == "config.json" else (sorted(full.rglob("config.json")) if full.is_dir() else [])
        for cfg in configs:
            try:
                data = json.loads(cfg.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if not isinstance(data, dict) or data.get("format") != "udcshield-checkpoint":
                continue
            prov = (data.get("extra") or {}).get("provenance") or {}
            artifact = cfg.parent.relative_to(self.root).as_posix()
            self.check_provenance(stage, artifact, prov)
            if prov.get("code"):
                self.code.append({"artifact": artifact, **prov["code"],
                                  "torch": (prov.get("libraries") or {}).get("torch")})

    def check_source(self, stage: str, split: str, src: dict[str, Any]) -> None:
        origin, recorded = str(src.get("origin", "")), src.get("sha256")
        entry = {"split": split, "id": src.get("id"), "origin": origin, "sha256": recorded}
        try:
            if origin.startswith("skimage.data."):
                import skimage.data

                actual = array_sha256(np.asarray(getattr(skimage.data, origin.rsplit(".", 1)[1])()))
            else:
                path = Path(origin) if Path(origin).is_absolute() else self.root / origin
                actual = file_sha256(path) if path.is_file() else tree_sha256(path)
        except (OSError, AttributeError, ValueError) as exc:
            entry["status"] = "missing"
            self.sources.append(entry)
            self.add("source", stage, f"{split}/{src.get('id')}", False,
                     f"source image {origin} cannot be read to verify it: {exc}")
            return
        ok = actual == recorded
        entry["status"] = "ok" if ok else "CHANGED"
        self.sources.append(entry)
        self.add("source", stage, f"{split}/{src.get('id')}", ok,
                 "" if ok else f"source image {origin} sha256 {actual[:12]} differs from recorded {str(recorded)[:12]}")

    def run(self, target: str) -> AuditReport:
        kind, name, stage, value = self.resolve(target)
        stages = self.chain(stage)
        detail: dict[str, Any] = {}
        if kind == "array":
            store, array = name.rsplit(".zarr/", 1)
            node = open_store(self.root / f"{store}.zarr")[array]
            detail = {"attributes": dict(node.attrs)}
            if hasattr(node, "dtype"):
                detail["shape"] = list(node.shape)
                detail["dtype"] = str(node.dtype)
        for st in stages:
            self.check_stage(st)
            for o in st.outs:
                for store in self.stores_under(o["path"]):
                    self.check_store(st.name, store)
                self.check_checkpoints(st.name, o["path"])
        return AuditReport(target=name, kind=kind, stage=stage, value=value, stages=stages, psfs=self.psfs,
                           sources=self.sources, code=self.code, checks=self.checks, detail=detail)


def _match_key(data: Any, key: str, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every way ``key`` (parts joined by '.' or '/') names a leaf of nested dict ``data``."""
    if key == "":
        return [] if isinstance(data, dict) else [(prefix, data)]
    if not isinstance(data, dict):
        return []
    found = []
    for k in data:
        k = str(k)
        if key == k:
            found += _match_key(data[k], "", (*prefix, k))
        elif key.startswith(k) and key[len(k)] in "./":
            found += _match_key(data[k], key[len(k) + 1:], (*prefix, k))
    return found


def audit(target: str, root: str | Path | None = None) -> AuditReport:
    """Trace ``target`` back through the DVC stages and verify every hash on the way.

    Args:
        target: a path relative to ``root`` (or absolute inside it), e.g. ``data/report/report.md``; an array
            of a zarr store, e.g. ``data/attack/adversarial.zarr/<array>``; or a metric key of a metrics file
            declared in ``dvc.yaml``, parts joined by '.' or '/' (``resunet:base.none.pgd_8.psnr``),
            optionally prefixed by ``<metrics file>:``.
        root: the repository holding ``dvc.yaml``, ``dvc.lock`` and ``params.yaml`` (default: found upward
            from the current folder).

    Returns:
        :class:`AuditReport`; ``report.ok`` is False when any hash, digest or params value differs, and
        ``report.failures`` names each altered file, array, params key or source image.

    Raises:
        AuditError: no ``dvc.yaml``/``dvc.lock``, or ``target`` names nothing known.
    """
    base = find_root(root if root is not None else ".")
    return _Auditor(base).run(target)
