"""Stage ``simulate``: photos -> pseudo-HDR scenes -> display-diffraction PSF -> paired zarr stores
(or a real paired UDC dataset read into the same stores; see ``SimulateConfig.source``).

Outputs (under ``layout.simulated``): ``psf.zarr`` (bank K x 3 x s x s, unit sum per channel, its
DISCNet kernel codes ``codes`` K x 5 float32, and 2 x 2 display unit cells ``mask``),
``train.zarr`` and ``test.zarr`` (``inputs``/``targets`` N x 3 x P x P float32 tone-mapped in [0, 1],
``psf_index`` N int32 and ``kernel_code`` N x 5 float32, the code of each pair's PSF). Train and test are
split by source photo. Data convention after DISCNet (Feng et al., CVPR 2021): clip at the saturation
level, tone-map both sides with v / (v + 0.25).

Kernel codes: for simulated data (``embedded``, ``folder``), the PCA codes of the bank
(:func:`udcshield.physics.psf_codes.psf_pca_codes`), ``kernel_code[i] = codes[psf_index[i]]``; for the
DISCNet release layout, the codes it ships (``PSF/kernel_code``). Real datasets that do not say which PSF
made an image (MIPI, Zhou, pre-paired DISCNet folders) have ``psf_index`` -1 and all-zero ``kernel_code``;
their ``codes`` in psf.zarr are still the PCA codes of the bank stored beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from udcshield.config import OpticsConfig, Params, SimulateConfig, to_dict
from udcshield.data.datasets import _split_dir, load_dataset, load_psf_bank
from udcshield.data.discnet_release import is_release_layout, release_codes, release_folders
from udcshield.data.simulate import SimulatedSplit, simulate_split
from udcshield.data.sources import EMBEDDED_PHOTOS
from udcshield.physics.masks import display_mask, load_user_mask
from udcshield.physics.psf import compute_psf, psf_bank
from udcshield.physics.psf_codes import DEFAULT_CODE_DIM, psf_pca_codes
from udcshield.physics.spectral import load_sensor_response, spectral_psf
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.runner import run_stage
from udcshield.pipeline.stage import Stage, StageContext, Unit
from udcshield.seeding import numpy_rng
from udcshield.store.hashing import array_sha256, file_sha256, tree_sha256
from udcshield.store.provenance import make_provenance
from udcshield.store.zarr_io import write_store

STAGE_NAME = "simulate"


PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PAIRED_SOURCES = ("discnet_synth", "mipi", "zhou_toled", "zhou_poled")


def _user_mask(optics: OpticsConfig) -> np.ndarray | None:
    return load_user_mask(optics.user_mask_path) if optics.mask == "user" else None


def make_psf_bank(optics: OpticsConfig, seed: int) -> np.ndarray:
    """PSF bank (K, 3, s, s) float64, each channel summing to 1; entry 0 is the centre PSF."""
    common = dict(mask_kind=optics.mask, pitch_um=optics.pitch_um, open_ratio=optics.open_ratio,
                  focal_length_mm=optics.focal_length_mm, f_number=optics.f_number,
                  sensor_pitch_um=optics.sensor_pitch_um, support_px=optics.support_px,
                  oversample=optics.oversample, user_mask=_user_mask(optics),
                  random_tile_flip=optics.random_tile_flip, rng=numpy_rng(seed, f"{STAGE_NAME}/tiles"))
    if optics.spectral_response_path:
        wavelengths, response = load_sensor_response(optics.spectral_response_path)
        if response.shape[0] != 3:
            raise ValueError(f"sensor response {optics.spectral_response_path} has {response.shape[0]} channels; "
                             "the simulated camera needs 3 channels (R, G, B)")
        psf = spectral_psf(wavelengths, response, **common)
    else:
        psf = compute_psf(wavelengths_nm=tuple(optics.wavelengths_nm), **common)
    return psf_bank(psf, optics.bank_size, numpy_rng(seed, f"{STAGE_NAME}/psf_bank"))


def dataset_psf_bank(cfg: SimulateConfig, seed: int) -> np.ndarray:
    """The PSFs of the data: a paired dataset's own ``PSF/*.npy`` when it has them, else the simulator's."""
    if cfg.source in PAIRED_SOURCES and (Path(cfg.dataset_root or "") / "PSF").is_dir():
        return load_psf_bank(cfg.dataset_root)
    return make_psf_bank(cfg.optics, seed)


def _release(cfg: SimulateConfig) -> bool:
    return cfg.source == "discnet_synth" and is_release_layout(cfg.dataset_root or "")


def bank_codes(cfg: SimulateConfig, psfs: np.ndarray) -> np.ndarray:
    """Kernel codes of the stored PSF bank, (K, 5) float32: the DISCNet release's own, else PCA codes."""
    return release_codes(cfg.dataset_root or "") if _release(cfg) else psf_pca_codes(psfs, DEFAULT_CODE_DIM)


def unit_cell(optics: OpticsConfig, samples: int = 84) -> np.ndarray:
    """Four display unit cells (2 x 2), ``samples`` per pitch, for the report: (2s, 2s) in [0, 1]."""
    step = optics.pitch_um / samples
    return display_mask(optics.mask, pitch_um=optics.pitch_um, open_ratio=optics.open_ratio, sample_um=step,
                        extent_um=2 * optics.pitch_um, user_mask=_user_mask(optics))


def folder_photos(root: str, split: str) -> list[str]:
    """Sorted photo paths in ``root/<split>`` (PNG, JPEG, TIFF)."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"photo folder not found: {folder}")
    photos = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise FileNotFoundError(f"no photos ({', '.join(PHOTO_SUFFIXES)}) in {folder}")
    return photos


def simulate(cfg: SimulateConfig, psfs: np.ndarray, split: str, seed: int) -> SimulatedSplit:
    """Paired UDC inputs and ground truths of one split ("train" or "test"), simulated or read."""
    count = {"train": cfg.train_patches_per_image, "test": cfg.test_patches_per_image}[split]
    if cfg.source in PAIRED_SOURCES:
        return load_dataset(cfg.source, cfg.dataset_root, split=split, patch_size=cfg.patch_size,
                            patches_per_image=count, seed=seed, knee=cfg.formation.knee,
                            saturation=cfg.formation.saturation, max_images=cfg.max_images)
    if cfg.source == "folder":
        photos = folder_photos(cfg.dataset_root, split)[:cfg.max_images]
    else:
        photos = list({"train": cfg.train_photos, "test": cfg.test_photos}[split])
    return simulate_split(photos, psfs, patch_size=cfg.patch_size, patches_per_image=count,
                          scale=cfg.scale, seed=seed, split=split, hdr=to_dict(cfg.hdr),
                          saturation=cfg.formation.saturation, transmission=cfg.formation.transmission,
                          noise=cfg.formation.noise, knee=cfg.formation.knee,
                          noise_params={"full_well_e": cfg.formation.full_well_e,
                                        "read_noise_e": cfg.formation.read_noise_e,
                                        "white_level": cfg.formation.white_level})


def source_digests(cfg: SimulateConfig, split: str) -> list[dict[str, str]]:
    """What a split was made from, for the lineage audit: one ``{id, origin, sha256}`` per source.

    Embedded photos: SHA-256 of the decoded pixels (``array_sha256`` of ``skimage.data.<name>()``), as the
    wheel's file layout may change; photo files: SHA-256 of the file; paired datasets: ``tree_sha256`` of
    the split folder (every file in it); the DISCNet release layout: ``tree_sha256`` of each folder read
    (ground truth of the split, ``PSF/ZTE_new``, ``PSF/kernel_code``, pre-simulated input folders), with
    the path below ``dataset_root`` as id.
    """
    if _release(cfg):
        root = Path(cfg.dataset_root or "")
        return [{"id": f.relative_to(root).as_posix(), "origin": f.as_posix(), "sha256": tree_sha256(f)}
                for f in release_folders(root, split)]
    if cfg.source in PAIRED_SOURCES:
        folder = _split_dir(Path(cfg.dataset_root or ""), split)
        return [{"id": folder.name, "origin": folder.as_posix(), "sha256": tree_sha256(folder)}]
    if cfg.source == "folder":
        return [{"id": Path(f).stem, "origin": Path(f).as_posix(), "sha256": file_sha256(f)}
                for f in folder_photos(cfg.dataset_root, split)[:cfg.max_images]]
    out = []
    for name in {"train": cfg.train_photos, "test": cfg.test_photos}[split]:
        if name in EMBEDDED_PHOTOS:
            import skimage.data

            out.append({"id": name, "origin": f"skimage.data.{name}",
                        "sha256": array_sha256(np.asarray(getattr(skimage.data, name)()))})
        else:
            out.append({"id": Path(name).stem, "origin": Path(name).as_posix(), "sha256": file_sha256(name)})
    return out


def optics_files(optics: OpticsConfig) -> dict[str, str]:
    """Files the PSFs were computed from (user mask, sensor response), by role; empty for built-in masks."""
    files = {"user_mask": optics.user_mask_path, "spectral_response": optics.spectral_response_path}
    return {role: path for role, path in files.items() if path}


def _pair_codes(data: SimulatedSplit) -> np.ndarray:
    """(N, D) float32 kernel codes of a split; zeros (N, 5) when the split carries none."""
    codes = np.asarray(data.kernel_code, dtype=np.float32)
    n = int(data.inputs.shape[0])
    if codes.ndim != 2 or codes.shape[0] != n:
        return np.zeros((n, DEFAULT_CODE_DIM), dtype=np.float32)
    return codes


def write_outputs(layout: Layout, params: Params, psfs: np.ndarray, splits: dict[str, SimulatedSplit]) -> dict[str, Any]:
    """Write psf.zarr, train.zarr and test.zarr atomically with provenance; return a summary."""
    section = to_dict(params.simulate)
    seeds = {"seed": params.seed, "derivation": "derive_seed(seed, 'simulate/<split>', image_id)"}
    optics = params.simulate.optics
    psf_prov = make_provenance(STAGE_NAME, section, seeds=seeds, inputs=optics_files(optics))
    with write_store(layout.psf_store, psf_prov) as w:
        w.add_array("psf", psfs.astype(np.float64), attrs={"axes": "K,C,Y,X", "wavelengths_nm": list(optics.wavelengths_nm),
                                                              "sensor_pitch_um": optics.sensor_pitch_um})
        w.add_array("mask", unit_cell(optics).astype(np.float32),
                    attrs={"axes": "Y,X", "kind": optics.mask, "extent_um": 2 * optics.pitch_um})
        w.add_array("codes", bank_codes(params.simulate, psfs).astype(np.float32),
                    attrs={"axes": "K,D", "role": "DISCNet kernel code (PCA) of each PSF"})
    summary: dict[str, Any] = {"psf_shape": list(psfs.shape)}
    for split, data in splits.items():
        attrs = make_provenance(STAGE_NAME, section, seeds=seeds, inputs={"psf": layout.psf_store},
                                extra={"split": split, "image_ids": list(data.image_ids),
                                       "sources": source_digests(params.simulate, split),
                                       "value_domain": "tone-mapped v/(v+knee), [0,1]"})
        with write_store(layout.simulated / f"{split}.zarr", attrs) as w:
            w.add_images("inputs", data.inputs, attrs={"role": "UDC-degraded input"})
            w.add_images("targets", data.targets, attrs={"role": "ground truth"})
            w.add_array("psf_index", np.asarray(data.psf_index, dtype=np.int32))
            w.add_array("kernel_code", _pair_codes(data),
                        attrs={"axes": "N,D", "role": "kernel code of each pair's PSF"})
        summary[split] = {"n": int(data.inputs.shape[0]), "shape": list(data.inputs.shape[1:])}
    return summary


class SimulateStage(Stage):
    """PSF bank (prepare), one unit per split (train, test), then the three stores (assemble)."""

    def plan(self, ctx: StageContext) -> list[Unit]:
        return [Unit(f"simulate-{split}", split, gpu=False) for split in SPLITS]

    def prepare(self, ctx: StageContext) -> np.ndarray:
        return dataset_psf_bank(ctx.params.simulate, ctx.params.seed)

    def run_unit(self, ctx: StageContext, unit: Unit, resources: np.ndarray) -> SimulatedSplit:
        return simulate(ctx.params.simulate, resources, unit.payload, ctx.params.seed)

    def assemble(self, ctx, units, results, resources) -> dict[str, Any]:
        return write_outputs(ctx.layout, ctx.params, resources, {u.payload: r for u, r in zip(units, results)})


SPLITS = ("train", "test")
STAGE = SimulateStage(
    name="simulate",
    desc="Display mask and optics -> PSF bank; scenes (pseudo-HDR photos or a real paired dataset) -> "
         "paired tone-mapped train/test zarr stores",
    params=("seed", "simulate"),
    outs=("data/simulated",),
    sections=("simulate",),
)


def run(params: Params, layout: Layout, device: Any = None, progress: Any = None) -> dict[str, Any]:
    """Whole stage on the local runner (:func:`udcshield.pipeline.runner.run_stage`); runs on the CPU."""
    import torch

    return run_stage(STAGE, params, layout, torch.device("cpu") if device is None else device, progress)


__all__ = ["STAGE", "make_psf_bank", "simulate", "source_digests", "write_outputs", "run"]
