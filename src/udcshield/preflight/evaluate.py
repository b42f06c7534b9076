"""Preflight of ``evaluate``: every metric can score images of the stored size (SSIM's Gaussian window,
:func:`udcshield.evaluation.metrics.ssim`, needs at least ``SSIM_WINDOW`` pixels a side; LPIPS's AlexNet trunk,
:data:`udcshield.attacks.lpips.MIN_SIZE`), and the ``lpips`` metric's local weights
(``evaluate.lpips_weights_path``) exist and load (:meth:`udcshield.attacks.lpips.LPIPS.from_file`), before any
work starts."""

from __future__ import annotations

from udcshield.attacks.lpips import LPIPS
from udcshield.attacks.lpips import MIN_SIZE as LPIPS_MIN_SIZE
from udcshield.config import ConfigError, Params
from udcshield.evaluation.metrics import SSIM_WINDOW
from udcshield.preflight.common import check_min_side

__all__ = ["MIN_SIDE", "check", "check_lpips_weights"]

#: Smallest image side each metric scores.
MIN_SIDE: dict[str, int] = {"ssim": SSIM_WINDOW, "lpips": LPIPS_MIN_SIZE}


def check_lpips_weights(path: str | None, where: str = "evaluate.lpips_weights_path") -> None:
    """ConfigError naming ``where`` and the file when ``path`` is not a readable LPIPS-AlexNet safetensors file
    (missing, not safetensors, keys or shapes that do not fit); the weights are loaded once and dropped."""
    if path is None:
        raise ConfigError(f"{where} is null: the lpips metric needs a local LPIPS-AlexNet safetensors file")
    try:
        LPIPS.from_file(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{where} ({path!r}): {err}") from None


def check(params: Params) -> None:
    """ConfigError naming ``evaluate.metrics[i]`` when ``simulate.patch_size`` is below that metric's minimum,
    or ``evaluate.lpips_weights_path`` when ``lpips`` is listed and its weights file is missing or unreadable."""
    for i, metric in enumerate(params.evaluate.metrics):
        if metric in MIN_SIDE:
            check_min_side(params, MIN_SIDE[metric], f"evaluate.metrics[{i}]", repr(metric))
    if "lpips" in params.evaluate.metrics:
        check_lpips_weights(params.evaluate.lpips_weights_path)
