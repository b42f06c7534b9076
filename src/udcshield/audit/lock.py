"""dvc.yaml / dvc.lock: reading them, DVC 3 md5 hashes, and the checks of each locked stage.

A file's hash is the md5 of its bytes; a folder's is the md5 of the sorted JSON listing of its files'
md5s and relative paths, followed by ``.dir``, over the files not excluded by the root ``.dvcignore``,
as DVC 3 (dvc-data) computes them; no DVC import is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from udcshield.audit.report import MAX_LISTED, AuditError, Check, StageLineage, short

_CHUNK = 1 << 20


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
        out.append(f"{where}: dvc.lock {short(locked)} != params {short(current)}")


class _AuditorBase:
    """State shared by the audit's parts: the repository, its dvc.yaml and dvc.lock stages, the checks."""

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

    def add(self, kind: str, stage: str, subject: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(kind, stage, subject, ok, detail))


class _LockChecks(_AuditorBase):
    """The chain of locked stages and the checks of their commands, params, dependencies and outputs."""

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
                shown = "; ".join(diffs[:MAX_LISTED]) + (" ..." if len(diffs) > MAX_LISTED else "")
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
        listed = ", ".join(f"{path}/{n}" for n in names[:MAX_LISTED])
        return listed + (f" (+{len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")
