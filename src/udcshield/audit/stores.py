"""Zarr stores and checkpoints on the chain: array digests, recorded input digests, source images."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from udcshield.audit.lock import _AuditorBase
from udcshield.store.hashing import array_sha256, file_sha256, tree_sha256
from udcshield.store.zarr_io import StoreError, open_store, verify_array


class _StoreChecks(_AuditorBase):
    """Checks of the stores and checkpoints that the chain's stages wrote."""

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
