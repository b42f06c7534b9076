"""Provenance records attached to every artifact: what made it, from what, with which code.

Fields: stage, resolved params of the stage, input artifacts with content digests, seeds, code version
(git commit and dirty flag when available, else the package version), library versions and device.
No environment variables, host names or credentials are recorded: the user:password part of any URL
in the record (params, input paths, extra fields) is replaced by ``***`` (``redact_credentials``).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import udcshield
from udcshield.store.hashing import tree_sha256

# scheme://user:password@host: the userinfo is everything from "//" to the last "@" before the path.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
_LIBRARIES = ("torch", "numpy", "zarr", "diffusers", "torchattacks", "scikit-image", "safetensors", "prefect", "dvc")


def code_version(root: str | Path | None = None) -> dict[str, Any]:
    """Git commit of the working tree at ``root`` (and whether it had uncommitted changes)."""
    info: dict[str, Any] = {"package": udcshield.__version__}
    cwd = Path(root) if root is not None else Path.cwd()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src"], cwd=cwd,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        info.update(git_commit=commit, src_dirty=bool(dirty))
    except (OSError, subprocess.SubprocessError):
        info.update(git_commit=None, src_dirty=None)
    return info


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape results."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def input_digests(inputs: dict[str, str | Path]) -> dict[str, dict[str, str]]:
    """Map input name -> {path, sha256} for artifacts the stage read (URL paths kept as URLs, without
    their user:password)."""
    def shown(p: str | Path) -> str:
        return redact_credentials(str(p)) if "://" in str(p) else Path(p).as_posix()

    return {name: {"path": shown(p), "sha256": tree_sha256(p)} for name, p in inputs.items()}


def redact_credentials(value: Any) -> Any:
    """Copy of ``value`` (nested dicts, lists, tuples, strings, scalars) in which every URL's
    ``user:password@`` is replaced by ``***@``; other values are returned unchanged."""
    if isinstance(value, str):
        return _URL_USERINFO.sub(r"\g<scheme>***@", value)
    if isinstance(value, dict):
        return {redact_credentials(k): redact_credentials(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_credentials(v) for v in value)
    return value


def make_provenance(stage: str, params: dict[str, Any], *, inputs: dict[str, str | Path] | None = None,
                    seeds: dict[str, Any] | None = None, device: str = "cpu",
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the provenance dictionary stored in a zarr store's attributes or a JSON sidecar."""
    return redact_credentials({
        "stage": stage,
        "params": params,
        "inputs": input_digests(inputs or {}),
        "seeds": seeds or {},
        "code": code_version(),
        "libraries": library_versions(),
        "device": device,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    })
