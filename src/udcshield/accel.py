"""Fast execution of restorers and the purifier on an accelerator: bf16 autocast, channels_last, torch.compile.

Everything here changes how a network is executed, never what it computes in float32 terms beyond
rounding: weights stay float32 (autocast runs matrix work in bfloat16 and accumulates in float32,
Micikevicius et al. 2018, "Mixed Precision Training"; Kalamkar et al. 2019 for bfloat16), inputs and
outputs stay float32 images in [0, 1]. Whether bf16 is acceptable is a measured question:
:func:`amp_psnr_gap` compares a model's output PSNR in bf16 and float32, and :func:`choose_amp` keeps
bf16 only where the gap is within a tolerance (0.05 dB by default).

On CPU, :func:`accelerate` applies channels_last and compile as asked but refuses bf16 unless
``allow_cpu_amp`` (autocast to bf16 on CPU is slower than float32 for these convolutional nets); the
pipeline entry points :func:`accelerate_restorer_for` and :func:`accelerate_purifier_for` change nothing
on CPU, so CPU results never depend on the ``accel`` params. Measurements: BENCHMARKS.md ("GPU speed").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

AMP_MODES: tuple[str, ...] = ("none", "bf16")
COMPILE_MODES: tuple[str, ...] = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class Acceleration:
    """How to execute a network.

    Attributes:
        amp: "none" (float32) or "bf16" (torch.autocast to bfloat16; outputs cast back to float32).
        channels_last: run convolutions on NHWC tensors (faster tensor-core kernels on GPUs).
        compile: "none" or a ``torch.compile`` mode; "reduce-overhead" captures CUDA graphs, which
            removes the per-kernel launch cost that dominates a diffusion reverse loop of small UNet calls.
    """

    amp: str = "none"
    channels_last: bool = False
    compile: str = "none"

    def __post_init__(self) -> None:
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {list(AMP_MODES)}, got {self.amp!r}")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {list(COMPILE_MODES)}, got {self.compile!r}")
        if not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last must be a bool, got {self.channels_last!r}")

    @property
    def enabled(self) -> bool:
        """True when any option departs from plain eager float32."""
        return self.amp != "none" or self.channels_last or self.compile != "none"

    def label(self) -> str:
        """Short name such as ``bf16+cl+compile`` (``fp32`` for the plain path)."""
        parts = ["bf16" if self.amp == "bf16" else "fp32"]
        if self.channels_last:
            parts.append("cl")
        if self.compile != "none":
            parts.append("compile" if self.compile == "default" else f"compile-{self.compile}")
        return "+".join(parts)


def _autocast(device_type: str, amp: str) -> torch.autocast:
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=amp == "bf16")


class AcceleratedModule(nn.Module):
    """Wrap an image-to-image module: (B, C, H, W) float32 in → (B, C, H, W) float32 out.

    The input is made channels_last when asked, the wrapped module runs under bf16 autocast when asked,
    and the output is returned as a contiguous float32 tensor, so attacks, losses and metrics see the
    same dtype and layout as without acceleration. Gradients flow to the input as usual.
    """

    def __init__(self, module: nn.Module, amp: str = "none", channels_last: bool = False) -> None:
        super().__init__()
        Acceleration(amp=amp, channels_last=channels_last)  # validates
        self.module = module
        self.amp = amp
        self.channels_last = channels_last
        if channels_last:
            module.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the wrapped module; see the class docstring for shapes and dtypes."""
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(x.device.type, self.amp):
            out = self.module(x)
        return out.float().contiguous()


def accelerate(model: nn.Module, accel: Acceleration, device: torch.device | str, *,
               allow_cpu_amp: bool = False) -> nn.Module:
    """Return ``model`` on ``device`` executed as ``accel`` says (the original module is moved, not copied).

    ``model`` maps (B, 3, H, W) float32 images in [0, 1] to the same shape. With ``accel`` all off the
    model itself is returned. The result of ``compile`` is a ``torch.compile`` wrapper: its first call per
    input shape compiles (seconds to minutes), later calls are fast. bf16 on CPU raises ValueError unless
    ``allow_cpu_amp``.
    """
    device = torch.device(device)
    if accel.amp != "none" and device.type == "cpu" and not allow_cpu_amp:
        raise ValueError("amp='bf16' on CPU is slower than float32 for these networks; "
                         "use amp='none' on CPU (or pass allow_cpu_amp=True to measure it)")
    model = model.to(device)
    if not accel.enabled:
        return model
    wrapped: nn.Module = AcceleratedModule(model, accel.amp, accel.channels_last)
    if accel.compile != "none":
        wrapped = torch.compile(wrapped, mode=None if accel.compile == "default" else accel.compile, dynamic=False)
    return wrapped


def noise_predictor(unet: nn.Module, accel: Acceleration) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A function (z_t, t) → ε̂ for a diffusers ``UNet2DModel`` executed as ``accel`` says.

    ``z_t``: (B, 3, H, W) float32 in DDPM space; ``t``: (B,) long timesteps (the UNet's 0-based index).
    Returns (B, 3, H, W) float32. With CUDA graphs ("reduce-overhead") the output buffer is reused by the
    next replay, so it is cloned before it is returned.
    """
    if accel.channels_last:
        unet.to(memory_format=torch.channels_last)

    def predict(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if accel.channels_last:
            z_t = z_t.contiguous(memory_format=torch.channels_last)
        with _autocast(z_t.device.type, accel.amp):
            out = unet(z_t, t).sample
        return out.float()

    if accel.compile == "none":
        return lambda z_t, t: predict(z_t, t).contiguous()
    compiled = torch.compile(predict, mode=None if accel.compile == "default" else accel.compile, dynamic=False)
    return lambda z_t, t: compiled(z_t, t).clone(memory_format=torch.contiguous_format)


def amp_psnr_gap(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, device: torch.device | str,
                 batch_size: int = 16) -> dict[str, float]:
    """PSNR of ``model`` on (inputs, targets) in float32 and under bf16 autocast, and their gap in dB.

    ``inputs``/``targets``: (N, 3, H, W) float32 in [0, 1]. Returns ``{"psnr_fp32", "psnr_bf16",
    "gap_db"}`` with gap = |fp32 − bf16| of the mean PSNR (8-bit convention of
    :func:`udcshield.evaluation.metrics.psnr`).
    """
    from udcshield.evaluation.metrics import psnr

    device = torch.device(device)
    model = model.to(device).eval()
    scores: dict[str, float] = {}
    for amp in ("none", "bf16"):
        wrapped = AcceleratedModule(model, amp=amp)
        outs = []
        with torch.no_grad():
            for lo in range(0, inputs.shape[0], batch_size):
                outs.append(wrapped(inputs[lo:lo + batch_size].to(device)).clamp(0.0, 1.0).cpu())
        scores["psnr_fp32" if amp == "none" else "psnr_bf16"] = float(psnr(torch.cat(outs), targets).mean())
    scores["gap_db"] = abs(scores["psnr_fp32"] - scores["psnr_bf16"])
    return scores


def choose_amp(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, device: torch.device | str,
               tolerance_db: float = 0.05) -> tuple[str, dict[str, Any]]:
    """"bf16" if the model's bf16 PSNR on (inputs, targets) is within ``tolerance_db`` of float32, else "none".

    Only meaningful on CUDA; on CPU returns "none" without measuring. Returns the choice and the
    measurement (see :func:`amp_psnr_gap`) so callers can record why.
    """
    if torch.device(device).type != "cuda":
        return "none", {"reason": "bf16 autocast is used on CUDA only"}
    gap = amp_psnr_gap(model, inputs, targets, device)
    return ("bf16" if gap["gap_db"] <= tolerance_db else "none"), {**gap, "tolerance_db": tolerance_db}


def accelerate_purifier(purifier: nn.Module, accel: Acceleration, device: torch.device | str, *,
                        allow_cpu_amp: bool = False) -> nn.Module:
    """Move a :class:`udcshield.defenses.purifier.DiffusionPurifier` to ``device`` and run its UNet as
    ``accel`` says (:func:`noise_predictor`); the reverse chain itself is unchanged. Returns the purifier.
    bf16 on CPU raises ValueError unless ``allow_cpu_amp``."""
    device = torch.device(device)
    if accel.amp != "none" and device.type == "cpu" and not allow_cpu_amp:
        raise ValueError("amp='bf16' on CPU is slower than float32 for these networks; use amp='none' on CPU")
    purifier = purifier.to(device)
    purifier.set_noise_runner(noise_predictor(purifier.unet, accel) if accel.enabled else None)
    return purifier


def _resolved(cfg: Any, amp: str) -> Acceleration:
    return Acceleration(amp=amp, channels_last=bool(cfg.channels_last), compile=str(cfg.compile))


def accelerate_restorer_for(cfg: Any, model: nn.Module, probe: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                            device: torch.device | str) -> tuple[nn.Module, str]:
    """Apply the params' ``accel`` section (:class:`udcshield.config.AccelConfig`) to a restorer.

    On CPU the model is returned on ``device`` unchanged (label ``fp32``). On CUDA ``amp: auto`` keeps bf16
    only when :func:`choose_amp` on ``probe()`` — (inputs, targets), (N, 3, H, W) in [0, 1], the same few
    test images for every call, so the choice cannot depend on sharding — is within
    ``cfg.amp_tolerance_db``. The probe is read and measured once per model and tolerance; the wrapper is
    built (and compiled) once per setting. Returns the module to attack with and its label (e.g. ``bf16+cl``).
    """
    device = torch.device(device)
    if device.type != "cuda":
        return model.to(device), "fp32"
    amp = cfg.amp
    if amp == "auto":
        choices = model.__dict__.setdefault("_amp_choice", {})
        key = (float(cfg.amp_tolerance_db), str(device))
        if key not in choices:
            choices[key] = choose_amp(model, *probe(), device, tolerance_db=key[0])[0]
        amp = choices[key]
    accel = _resolved(cfg, amp)
    cache = model.__dict__.setdefault("_accelerated", {})  # one wrapper per setting: compile once per model
    key = (accel, str(device))
    if key not in cache:
        cache[key] = accelerate(model, accel, device)
    return cache[key], accel.label()


def accelerate_purifier_for(cfg: Any, purifier: nn.Module, device: torch.device | str) -> str:
    """Apply the params' ``accel`` section to a DiffusionPurifier's UNet in place; returns its label.

    CPU: nothing changes (``fp32``). CUDA: bf16 only for ``amp: bf16`` (``auto`` stays float32: the
    restorer-side check says nothing about the purifier), compile uses CUDA graphs ("reduce-overhead").
    """
    device = torch.device(device)
    if device.type != "cuda":
        purifier.to(device)
        purifier.set_noise_runner(None)
        purifier.__dict__.pop("_accel_key", None)
        return "fp32"
    accel = Acceleration(amp="bf16" if cfg.amp == "bf16" else "none", channels_last=bool(cfg.channels_last),
                         compile="none" if cfg.compile == "none" else "reduce-overhead")
    if purifier.__dict__.get("_accel_key") != (accel, str(device)):  # keep a compiled runner across shards
        accelerate_purifier(purifier, accel, device)
        purifier.__dict__["_accel_key"] = (accel, str(device))
    return accel.label()
