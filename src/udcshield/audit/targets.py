"""What an audit target names: a path in the repository, an array of a zarr store, or a metric key."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from udcshield.audit.lock import _AuditorBase, _is_within, _out_paths
from udcshield.audit.report import MAX_LISTED, AuditError
from udcshield.store.zarr_io import StoreError, open_store


class _TargetResolver(_AuditorBase):
    """Resolution of a target to (kind, canonical name, producing stage, metric value)."""

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
            options = ", ".join(f"{f}:{'.'.join(k)}" for _, f, k, _ in found[:MAX_LISTED])
            raise AuditError(f"metric key {target!r} is ambiguous: {options}; prefix it with '<metrics file>:'")
        stage, fname, keys, value = found[0]
        return "metric", f"{fname}:{'.'.join(keys)}", stage, value


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

