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

Nothing is stored on the networks: a restorer is accelerated by wrapping it (the wrapper is returned),
the purifier by a noise predictor that the caller passes to the reverse chain
(``reverse_chain(..., noise_predictor=...)``, :mod:`udcshield.defenses.samplers`). Building a compiled
wrapper is expensive, so callers that accelerate the same model repeatedly (a stage running shard after
shard) hold an :class:`AccelCache` and pass it in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

AMP_MODES: tuple[str, ...] = ("none", "bf16")
COMPILE_MODES: tuple[str, ...] = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: ``(z_t, t0) -> ε̂`` for a DDPM UNet: z_t (B, 3, H, W) float32 in DDPM space, t0 the UNet's 0-based (B,)
#: long timestep index; returns float32 of z_t's shape. The contract of ``noise_predictor=`` in
#: :func:`udcshield.defenses.samplers.reverse_chain`.
NoisePredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
T = TypeVar("T")


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


def noise_predictor(unet: nn.Module, accel: Acceleration) -> NoisePredictor:
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
                        allow_cpu_amp: bool = False) -> NoisePredictor | None:
    """Move a :class:`udcshield.defenses.purifier.DiffusionPurifier` to ``device`` and return the noise
    predictor (:func:`noise_predictor`) that runs its UNet as ``accel`` says, or None when ``accel`` is
    all off (the plain UNet call). Pass it to the reverse chain as ``noise_predictor=``; the chain itself
    is unchanged. bf16 on CPU raises ValueError unless ``allow_cpu_amp``."""
    device = torch.device(device)
    if accel.amp != "none" and device.type == "cpu" and not allow_cpu_amp:
        raise ValueError("amp='bf16' on CPU is slower than float32 for these networks; use amp='none' on CPU")
    purifier.to(device)
    return noise_predictor(purifier.unet, accel) if accel.enabled else None


class AccelCache:
    """Accelerated executions, built once per (kind, model, setting, device) and then reused.

    Compiling a wrapper (``torch.compile``, CUDA graphs) takes seconds to minutes, and recompiling the
    same code for new wrapper objects runs into torch.compile's recompile limit, so a caller that
    accelerates the same model again and again (a stage running shard after shard) keeps one cache for
    its run and passes it to :func:`accelerate_restorer_for` / :func:`accelerate_purifier_for`. Entries
    are keyed by the model's identity and hold a reference to it, so a key cannot be reused by another
    object while the entry lives; :meth:`clear` drops everything.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], tuple[nn.Module, Any]] = {}

    def get(self, kind: str, model: nn.Module, setting: Any, device: torch.device | str,
            build: Callable[[], T]) -> T:
        """The cached value for (kind, model, setting, device), built by ``build()`` on the first request."""
        key = (kind, id(model), setting, str(torch.device(device)))
        entry = self._entries.get(key)
        if entry is None or entry[0] is not model:
            entry = (model, build())
            self._entries[key] = entry
        return entry[1]

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry (and release the models it referenced)."""
        self._entries.clear()


def _resolved(cfg: Any, amp: str) -> Acceleration:
    return Acceleration(amp=amp, channels_last=bool(cfg.channels_last), compile=str(cfg.compile))


def accelerate_restorer_for(cfg: Any, model: nn.Module, probe: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                            device: torch.device | str, cache: AccelCache | None = None) -> tuple[nn.Module, str]:
    """Apply the params' ``accel`` section (:class:`udcshield.config.AccelConfig`) to a restorer.

    On CPU the model is returned on ``device`` unchanged (label ``fp32``). On CUDA ``amp: auto`` keeps bf16
    only when :func:`choose_amp` on ``probe()`` — (inputs, targets), (N, 3, H, W) in [0, 1], the same few
    test images for every call, so the choice cannot depend on sharding — is within
    ``cfg.amp_tolerance_db``. With a ``cache`` the probe is read and measured once per model and
    tolerance, and the wrapper built (and compiled) once per setting; without, both happen on every call.
    Returns the module to attack with and its label (e.g. ``bf16+cl``). The model itself is only moved.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return model.to(device), "fp32"
    cache = AccelCache() if cache is None else cache
    amp = cfg.amp
    if amp == "auto":
        tolerance = float(cfg.amp_tolerance_db)
        amp = cache.get("amp_choice", model, tolerance, device,
                        lambda: choose_amp(model, *probe(), device, tolerance_db=tolerance)[0])
    accel = _resolved(cfg, amp)
    return cache.get("restorer", model, accel, device, lambda: accelerate(model, accel, device)), accel.label()


def accelerate_purifier_for(cfg: Any, purifier: nn.Module, device: torch.device | str,
                            cache: AccelCache | None = None) -> tuple[NoisePredictor | None, str]:
    """Apply the params' ``accel`` section to a DiffusionPurifier's UNet; returns (noise predictor, label).

    Pass the noise predictor to the reverse chain (``noise_predictor=``, e.g. of
    :func:`udcshield.defenses.dataset.purify_set`); None means the plain UNet call. CPU: nothing changes
    (None, ``fp32``). CUDA: bf16 only for ``amp: bf16`` (``auto`` stays float32: the restorer-side check
    says nothing about the purifier), compile uses CUDA graphs ("reduce-overhead"). With a ``cache`` the
    predictor (and its compiled graphs) is built once per purifier and setting and kept across shards.
    """
    device = torch.device(device)
    if device.type != "cuda":
        purifier.to(device)
        return None, "fp32"
    accel = Acceleration(amp="bf16" if cfg.amp == "bf16" else "none", channels_last=bool(cfg.channels_last),
                         compile="none" if cfg.compile == "none" else "reduce-overhead")
    cache = AccelCache() if cache is None else cache
    purifier.to(device)
    return cache.get("purifier", purifier, accel, device, lambda: accelerate_purifier(purifier, accel, device)), \
        accel.label()
