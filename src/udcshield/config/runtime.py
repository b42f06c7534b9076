"""The ``evaluate``, ``report``, ``runner`` and ``accel`` sections: scoring, rendering and execution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from udcshield.config.base import ConfigError, option, positive
from udcshield.config.robustness import AttackConfig

__all__ = ["AccelConfig", "EvaluateConfig", "ReportConfig", "RunnerConfig"]


@dataclass(frozen=True)
class EvaluateConfig:
    """Per-image metrics under the SYNTH convention of DISCNet / BasicSR: clamp to [0, 1], 8-bit quantisation, RGB.

    ``lpips`` (Zhang et al., CVPR 2018; AlexNet trunk, lower is better, about 0..1) is scored only from local
    weights, ``lpips_weights_path`` (a safetensors file, :meth:`udcshield.attacks.lpips.LPIPS.from_file`);
    nothing is downloaded.
    """

    metrics: tuple[Literal["psnr", "ssim", "lpips"], ...] = option(
        ("psnr", "ssim"), "Per-image metrics; must include `psnr`, the headline metric; `lpips` (lower is better) "
                          "needs `lpips_weights_path`.")
    batch_size: int = option(32, "Images per batch.")
    worst_case: tuple[str, ...] | None = option(
        None, "Attacks of the per-image worst case (the report's headline), each one of `attack.attacks`; "
              "null = every L-inf attack there. At each budget, each image's lowest PSNR (and SSIM; highest LPIPS) "
              "over them.")
    lpips_weights_path: str | None = option(
        None, "Local LPIPS-AlexNet weights (safetensors, the keys of the reference `lpips` package) for the `lpips` "
              "metric; null = LPIPS not computed. Nothing is downloaded.")

    def validate(self, where: str) -> None:
        positive(self, where, "batch_size")
        if "lpips" in self.metrics and self.lpips_weights_path is None:
            raise ConfigError(f"{where}.metrics[{self.metrics.index('lpips')}] 'lpips' needs "
                              f"{where}.lpips_weights_path: set it to a local LPIPS-AlexNet safetensors file "
                              "(nothing is downloaded)")
        if self.lpips_weights_path is not None and not self.lpips_weights_path.strip():
            raise ConfigError(f"{where}.lpips_weights_path must be a file path or null, got an empty string")
        if "psnr" not in self.metrics:
            raise ConfigError(f"{where}.metrics must include psnr (the headline metric)")
        if self.worst_case is not None and (not self.worst_case or len(set(self.worst_case)) != len(self.worst_case)):
            raise ConfigError(f"{where}.worst_case must list distinct attacks (or be null), got {list(self.worst_case)}")

    def check_attack(self, attack: AttackConfig, where: str) -> None:
        """Every ``worst_case`` member must be one of the configured attacks."""
        names = [a.name for a in attack.attacks]
        for i, name in enumerate(self.worst_case or ()):
            if name not in names:
                raise ConfigError(f"{where}.worst_case[{i}] {name!r} is not one of attack.attacks "
                                  f"({', '.join(names)})")


@dataclass(frozen=True)
class ReportConfig:
    """Report rendering (``report.md`` and the self-contained ``report.html``).

    ``grid_images``: the first N test images shown in the HTML image grids. ``grid_attack``: the attack
    shown there, at its largest budget (null = the first of ``attack.attacks``).
    """

    table_metric: Literal["psnr", "ssim"] = option("psnr", "Metric of the report's tables.")
    grid_images: int = option(3, "`report.html` image grids: the first N test images.")
    grid_attack: str | None = option(
        None, "Attack shown in the grids at its largest budget (one of `attack.attacks`); null = the first.")

    def validate(self, where: str) -> None:
        positive(self, where, "grid_images")

    def check_attack(self, attack: AttackConfig, where: str) -> None:
        """``grid_attack`` must name one of the configured attacks."""
        names = [a.name for a in attack.attacks]
        if self.grid_attack is not None and self.grid_attack not in names:
            raise ConfigError(f"{where}.grid_attack {self.grid_attack!r} is not one of attack.attacks "
                              f"({', '.join(names)})")


@dataclass(frozen=True)
class RunnerConfig:
    """Where the sharded stages (``attack``, ``purify``) run; results are bit-identical on either runner.

    ``kind``: ``local`` runs shards one after another in the flow's process; ``dask`` submits them
    through prefect-dask's DaskTaskRunner to a dask.distributed cluster: the scheduler at ``address``
    (e.g. ``tcp://10.0.0.5:8786``; also read from the environment variable UDCSHIELD_DASK_ADDRESS
    when null), or else a LocalCluster of ``n_workers`` workers with ``threads_per_worker`` threads each,
    in threads of the flow's process (``processes: false``) or in separate processes.
    ``shard_cache``: folder or fsspec URL for finished shards (null: ``<data root>/.shards``); a killed
    stage reruns only the missing shards. ``keep_shards``: keep them after the stage's store is written.
    Not a DVC parameter of any stage: changing the runner does not change a result.
    """

    kind: Literal["local", "dask"] = option(
        "local", "`local` (shards one after another) or `dask` (prefect-dask DaskTaskRunner).")
    address: str | None = option(
        None, "Dask scheduler, e.g. `tcp://10.0.0.5:8786` (or env UDCSHIELD_DASK_ADDRESS); null = LocalCluster.")
    n_workers: int = option(2, "LocalCluster workers (one GPU each on a GPU node).")
    threads_per_worker: int = option(1, "Threads per LocalCluster worker.")
    processes: bool = option(False, "LocalCluster workers as separate processes (false: threads of the flow).")
    shard_cache: str | None = option(
        None, "Finished shards, for resume: folder or fsspec URL; null = `<data root>/.shards`.")
    keep_shards: bool = option(False, "Keep the shard cache after the stage's store is written.")

    def validate(self, where: str) -> None:
        positive(self, where, "n_workers", "threads_per_worker")
        if self.address is not None and self.kind != "dask":
            raise ConfigError(f"{where}.address is set ({self.address!r}) but {where}.kind is {self.kind!r}; "
                              f"set {where}.kind to dask")
        if self.shard_cache is not None and not self.shard_cache.strip():
            raise ConfigError(f"{where}.shard_cache must be a folder, a URL or null, got an empty string")


@dataclass(frozen=True)
class AccelConfig:
    """How the attack and purify stages execute networks on CUDA (:mod:`udcshield.accel`); ignored on CPU.

    ``amp``: ``none`` (float32), ``bf16`` (autocast) or ``auto`` (bf16 for a restorer only when its PSNR on
    the first test images stays within ``amp_tolerance_db`` of float32; the measurement is stored with the
    attack's cost). The purifier follows ``bf16``; with ``auto`` it stays float32.
    ``channels_last``: NHWC convolutions. ``compile``: ``none`` or a torch.compile mode; the purifier's UNet
    uses ``reduce-overhead`` (CUDA graphs) whenever compile is not ``none``.
    Accelerated runs differ from float32 runs by rounding, so these keys are DVC parameters of the stages.
    """

    amp: Literal["none", "bf16", "auto"] = option(
        "none", "`none` (float32), `bf16` (autocast), or `auto` (bf16 where a restorer's PSNR stays within "
                "`amp_tolerance_db`).")
    channels_last: bool = option(False, "NHWC memory layout for convolutions.")
    compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = option(
        "none", "torch.compile mode (the purifier's UNet then uses CUDA graphs).")
    amp_tolerance_db: float = option(0.05, "`auto`: allowed PSNR loss of bf16 against float32, in dB (> 0).")

    def validate(self, where: str) -> None:
        if not self.amp_tolerance_db > 0:
            raise ConfigError(f"{where}.amp_tolerance_db must be > 0, got {self.amp_tolerance_db}")
