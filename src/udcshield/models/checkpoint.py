"""Checkpoint folders: ``config.json`` + ``model.safetensors``, written atomically, never pickled.

Folder format (shared by restorers and the diffusion purifier)::

    <directory>/config.json        {"format": "udcshield-checkpoint", "format_version": 1,
                                    "kind": "restorer" | "purifier", "architecture": <name>,
                                    "kwargs": {...init kwargs...}, "extra": {...free JSON...},
                                    "weights_sha256": <hex SHA-256 of model.safetensors>}
    <directory>/model.safetensors  the state dict (safetensors, CPU tensors)

A checkpoint is written into a temporary sibling folder and renamed into place only when both files are
complete, so a crash never leaves a folder that looks finished. ``config.json`` records the SHA-256 of
the ``model.safetensors`` bytes actually written; every load recomputes it and refuses weights that were
altered or swapped afterwards, and refuses a ``config.json`` that records no digest (an older checkpoint,
to be re-saved or retrained). Loading never unpickles: a ``.pt``, ``.pth``, ``.bin``, ``.pkl`` or
``.ckpt`` file is refused with an explanation.

Given weights from elsewhere (a user's own model, ``train.models[i].weights``) are read by
:func:`read_weights_file`: a ``.safetensors`` file, or a PyTorch state dict ``.pt`` / ``.pth`` read with
``torch.load(..., weights_only=True)`` (tensors and plain containers only, no code).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from udcshield.models.registry import create_restorer, resolve_restorer
from udcshield.store.hashing import file_sha256

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_config",
    "write_checkpoint_folder",
    "read_checkpoint_folder",
    "load_state_dict_strict",
    "state_dict_mismatch",
    "read_weights_file",
    "load_weights_file",
    "WEIGHTS_SUFFIXES",
    "DIGEST_KEY",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_NAME = "udcshield-checkpoint"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")
DIGEST_KEY = "weights_sha256"
#: Suffixes :func:`read_weights_file` accepts (safetensors; PyTorch state dicts read with weights_only=True).
WEIGHTS_SUFFIXES = (".safetensors", ".pt", ".pth")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint_folder(
    directory: str | os.PathLike[str],
    *,
    kind: str,
    architecture: str,
    kwargs: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    extra: dict[str, Any] | None = None,
) -> None:
    """Atomically write ``config.json`` + ``model.safetensors`` to ``directory`` (restorers such as
    Zhou et al. 2021's ResUNet, or the DDPM purifier of Ho et al. 2020; weights saved as CPU float tensors).

    An existing checkpoint folder at ``directory`` is replaced; a folder holding anything else raises
    ``FileExistsError`` rather than being deleted. ``kwargs`` and ``extra`` must be JSON-serializable.
    The weights are written and fsynced first; the SHA-256 of the file as written is then recorded in
    ``config.json`` under ``"weights_sha256"``, which :func:`read_checkpoint_folder` verifies on load.
    """
    directory = Path(directory)
    config = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "kind": kind,
              "architecture": architecture, "kwargs": kwargs, "extra": extra or {}}
    try:  # fail on unserializable kwargs/extra before any file is written
        json.dumps(config)
    except (TypeError, ValueError) as err:
        raise TypeError(f"checkpoint config for {directory} is not JSON-serializable: {err}") from None
    if directory.exists():
        if not directory.is_dir():
            raise FileExistsError(f"{directory} exists and is not a directory")
        unexpected = sorted(p.name for p in directory.iterdir() if p.name not in (CONFIG_NAME, WEIGHTS_NAME))
        if unexpected:
            raise FileExistsError(f"refusing to overwrite {directory}: it holds files that are not part of a "
                                  f"checkpoint: {unexpected}")
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in state_dict.items()}
    directory.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = directory.parent / f".{directory.name}.tmp-{tag}"
    old = directory.parent / f".{directory.name}.old-{tag}"
    tmp.mkdir()
    try:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        _fsync(tmp / WEIGHTS_NAME)
        config[DIGEST_KEY] = file_sha256(tmp / WEIGHTS_NAME)  # digest of the bytes on disk
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _fsync(tmp / CONFIG_NAME)
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not directory.exists():
            os.replace(old, directory)
        raise
    shutil.rmtree(old, ignore_errors=True)


def read_checkpoint_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``config.json`` of a checkpoint folder (no weights are loaded).

    Returns the dict ``{"kind", "architecture", "kwargs", "extra", ...}`` (design notes Section 6; models
    of Song et al., arXiv 2402.13629).
    """
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(f"checkpoint folder {directory} does not exist")
    if not directory.is_dir():
        raise NotADirectoryError(f"checkpoint {directory} must be a folder with {CONFIG_NAME} and {WEIGHTS_NAME}")
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        pickles = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        hint = f" (found pickle files {pickles}; udcshield never unpickles)" if pickles else ""
        raise FileNotFoundError(f"checkpoint folder {directory} has no {CONFIG_NAME}{hint}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{config_path} is not valid JSON: {err}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} must hold a JSON object")
    missing = [key for key in ("kind", "architecture", "kwargs") if key not in config]
    if missing:
        raise ValueError(f"{config_path} lacks required keys {missing}")
    if not isinstance(config["kwargs"], dict):
        raise ValueError(f"{config_path}: 'kwargs' must be an object, got {type(config['kwargs']).__name__}")
    version = config.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ValueError(f"{config_path}: unsupported format_version {version!r} (expected {FORMAT_VERSION})")
    config.setdefault("extra", {})
    return config


def read_checkpoint_folder(
    directory: str | os.PathLike[str], *, kind: str, device: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Return ``(config, state_dict)`` of a checkpoint folder of the given ``kind``, tensors on ``device``.

    Reads safetensors only (never pickle); weights must be finite. Verified before the weights are
    returned: ``config.json`` records a ``"weights_sha256"`` digest (else ``ValueError``: an older
    checkpoint, to be re-saved or retrained), and the SHA-256 of ``model.safetensors`` (hashed in 1 MiB
    chunks) equals it (else ``ValueError`` naming the file and both digests: the weights were altered or
    swapped after the checkpoint was written); the file must also be unchanged (inode, size, mtime)
    between parsing and hashing. Shared by restorers (Zhou et al. 2021) and the DDPM purifier (Ho et al.
    2020).
    """
    directory = Path(directory)
    config = read_checkpoint_config(directory)
    if config["kind"] != kind:
        raise ValueError(f"checkpoint {directory} holds a {config['kind']!r}, not a {kind!r}")
    weights_path = directory / WEIGHTS_NAME
    if not weights_path.is_file():
        pickles = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            raise ValueError(f"checkpoint folder {directory} has no {WEIGHTS_NAME} but pickle files {pickles}; "
                             "udcshield never unpickles (arbitrary code execution). Convert the weights to "
                             "safetensors with a trusted tool first.")
        raise FileNotFoundError(f"checkpoint folder {directory} has no {WEIGHTS_NAME}")
    config_path = directory / CONFIG_NAME
    recorded = config.get(DIGEST_KEY)
    if recorded is None:
        raise ValueError(f"{config_path} records no weights digest ({DIGEST_KEY!r}): the checkpoint was written "
                         f"by an older udcshield version and its {WEIGHTS_NAME} cannot be verified; re-save it "
                         "with save_checkpoint/save_purifier from trusted weights, or retrain it")
    if not isinstance(recorded, str) or not _HEX_SHA256.fullmatch(recorded):
        raise ValueError(f"{config_path}: {DIGEST_KEY!r} must be a 64-character lowercase hex SHA-256, "
                         f"got {recorded!r}")
    before = _file_identity(weights_path)
    try:
        state_dict = load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        with open(weights_path, "rb") as handle:
            head = handle.read(2)
        kind_hint = " (it looks like a pickle / torch.save file)" if head[:1] == b"\x80" or head == b"PK" else ""
        raise ValueError(f"{weights_path} is not a valid safetensors file{kind_hint}: {err}") from None
    bad = [name for name, t in state_dict.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ValueError(f"{weights_path} holds non-finite values in {bad[:5]}")
    actual = file_sha256(weights_path)
    if _file_identity(weights_path) != before:
        raise ValueError(f"{weights_path} changed while it was being loaded; refusing to use its weights")
    if actual != recorded:
        raise ValueError(f"{weights_path} has sha256 {actual[:12]} but {config_path} records {recorded[:12]}: "
                         "the weights file was altered or swapped after the checkpoint was written; "
                         "refusing to load it")
    return config, state_dict


def _file_identity(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def state_dict_mismatch(expected: dict[str, torch.Tensor], state_dict: dict[str, torch.Tensor]) -> str | None:
    """How ``state_dict`` fails to fit ``expected`` (a model's state dict, meta tensors allowed): missing,
    unexpected and mis-shaped tensors (the first five of each, by key), or None when it fits exactly."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(expected) & set(state_dict)) if state_dict[k].shape != expected[k].shape]
    if not (missing or unexpected or shapes):
        return None
    parts = []
    if missing:
        parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        parts.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    if shapes:
        parts.append(f"shape mismatch {shapes[:5]}")
    return "; ".join(parts)


def load_state_dict_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``model``; on any missing/unexpected key or shape mismatch raise a
    ``ValueError`` naming ``source`` and the offending tensors (restorers of Zhou et al. 2021, DDPM of
    Ho et al. 2020)."""
    problem = state_dict_mismatch(model.state_dict(), state_dict)
    if problem is not None:
        raise ValueError(f"weights in {source} do not match the architecture: {problem}")
    model.load_state_dict(state_dict, strict=True)


def read_weights_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict stored in ``path``: name -> CPU tensor (float weights finite).

    ``.safetensors`` files are read with safetensors; ``.pt`` / ``.pth`` files with
    ``torch.load(path, map_location="cpu", weights_only=True)``, which restores tensors and plain
    containers only and refuses anything that would run code. The file must hold a flat mapping of
    string keys to tensors (a state dict, not a whole pickled model or a training checkpoint wrapping one).

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        ValueError: another suffix, a file that does not parse, a value that is not a tensor, or
            non-finite float weights; the message names the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist" if not path.exists()
                                else f"weights file {path} is not a file")
    suffix = path.suffix.lower()
    if suffix not in WEIGHTS_SUFFIXES:
        raise ValueError(f"weights file {path}: unsupported suffix {path.suffix!r}; expected one of "
                         f"{list(WEIGHTS_SUFFIXES)} (a safetensors file or a PyTorch state dict)")
    try:
        if suffix == ".safetensors":
            loaded: Any = load_file(str(path), device="cpu")
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any parse failure (incl. weights_only refusals) is a bad file
        raise ValueError(f"weights file {path} cannot be read as {suffix} weights: {type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"weights file {path} holds a {type(loaded).__name__}, not a state dict "
                         "(a mapping of parameter names to tensors)")
    for key, value in loaded.items():
        if not isinstance(key, str):
            raise ValueError(f"weights file {path}: key {key!r} is not a string")
        if not isinstance(value, torch.Tensor):
            hint = (" (it looks like a checkpoint wrapping the state dict: save the state dict itself)"
                    if isinstance(value, dict) else "")
            raise ValueError(f"weights file {path}: {key!r} is a {type(value).__name__}, not a tensor{hint}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"weights file {path}: {key!r} holds NaN or infinite values")
    return dict(loaded)


def load_weights_file(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load the weights file ``path`` (:func:`read_weights_file`) into ``model`` strictly and return it.

    Every tensor of ``model``'s state dict must be in the file with the same shape, and the file must hold
    no other; otherwise ``ValueError`` naming ``path`` and the keys (:func:`load_state_dict_strict`).
    """
    load_state_dict_strict(model, read_weights_file(path), str(path))
    return model


def save_checkpoint(model: nn.Module, directory: Path, extra: dict[str, Any] | None = None) -> None:
    """Save a registered restorer (from :func:`create_restorer`) to the folder ``directory``.

    Writes ``config.json`` (``{"architecture": model.restorer_name, "kwargs": model.init_kwargs,
    "extra": extra, "kind": "restorer", "weights_sha256": <digest of the written weights>, ...}``) and
    ``model.safetensors`` atomically (Section 6 of the
    design notes; Song et al., arXiv 2402.13629 restorers are checkpointed this way).
    """
    name = getattr(model, "restorer_name", None)
    kwargs = getattr(model, "init_kwargs", None)
    if not isinstance(name, str) or not isinstance(kwargs, dict):
        raise TypeError(f"{type(model).__name__} has no restorer_name/init_kwargs; build it with create_restorer()")
    write_checkpoint_folder(directory, kind="restorer", architecture=name, kwargs=kwargs,
                            state_dict=model.state_dict(), extra=extra)


def load_checkpoint(directory: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a restorer (e.g. Zhou et al. 2021 ResUNet) saved by :func:`save_checkpoint`; returned in
    eval mode on ``device``, mapping (B, 3, H, W) [0, 1] images to the same shape.

    The weights are verified before use (see :func:`read_checkpoint_folder`): their SHA-256 must equal
    the ``"weights_sha256"`` recorded in ``config.json`` at save time.

    ``architecture`` is a registered name, an entry point of the group ``udcshield.restorers`` or a factory
    reference ``"module:callable"``, which is imported (:func:`udcshield.models.registry.resolve_restorer`:
    only ``nn.Module`` subclasses and functions annotated to return one are called).

    Raises ``FileNotFoundError`` (missing folder or files), ``ValueError`` (pickle instead of
    safetensors, unknown architecture or a factory that does not import, weights that do not fit the architecture, corrupt files, weights
    altered or swapped after saving, a ``config.json`` with no recorded digest).
    """
    config, state_dict = read_checkpoint_folder(directory, kind="restorer", device="cpu")
    architecture = config["architecture"]
    try:
        resolve_restorer(architecture)
    except ValueError as err:
        raise ValueError(f"checkpoint {directory} uses unknown architecture {architecture!r}: {err}") from None
    try:
        model = create_restorer(architecture, **config["kwargs"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint {directory}: cannot build {architecture!r} from its kwargs: {err}") from None
    load_state_dict_strict(model, state_dict, str(Path(directory) / WEIGHTS_NAME))
    return model.to(device).eval()
