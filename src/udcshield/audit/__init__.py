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

from pathlib import Path
from typing import Any

from udcshield.audit.lock import _LockChecks, dvc_md5, find_root
from udcshield.audit.report import AuditError, AuditReport, Check, StageLineage
from udcshield.audit.stores import _StoreChecks
from udcshield.audit.targets import _TargetResolver
from udcshield.store.zarr_io import open_store

__all__ = ["AuditError", "Check", "StageLineage", "AuditReport", "dvc_md5", "audit", "find_root"]


class _Auditor(_TargetResolver, _LockChecks, _StoreChecks):
    """One audit: resolve the target, walk the chain, run every check."""

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
