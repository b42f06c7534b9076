"""Speed harness: attack (PGD-20), purification (DDPM and few-step DDIM), a fine-tune step and evaluation,
per restorer, each against the per-image float32 loop that research code runs, measured in the same process.

    python -m benchmarks.speed --quick                 # CPU, tiny models, 32x32: about a minute
    python -m benchmarks.speed --models resunet,discnet --size 256 --images 64     # a GPU machine

For every model (built at ``--size-preset``, briefly trained so that PSNRs mean something) it measures

* ``attack``: PGD-20 at 8/256 (Madry et al. 2018; the study's setting, Song et al. arXiv 2402.13629).
  Baseline: one image at a time, eager float32. Then batched runs under each acceleration of
  ``--variants`` (bf16 autocast, channels_last, torch.compile; :mod:`udcshield.accel`). Reported:
  images/s, speed-up over the baseline, the PSNR of the restored adversarial output (evaluated in float32)
  and its gap to the float32 batched attack (bf16 is acceptable where the gap is <= 0.05 dB), and achieved
  FLOP/s (FLOPs of one forward+backward counted with ``FlopCounterMode``, conv/matmul only) as a fraction
  of the device's dense bf16 peak.
* ``purify``: DiffPure-style purification (Nie et al. 2022) of the PGD inputs with a DDPM purifier trained
  here on the degraded inputs for ``--purifier-steps``. Baseline: one image at a time, the full DDPM
  chain from t* (t* network evaluations), eager float32. Then batched DDPM (full and strided to
  ``--ddpm-steps`` evaluations, Nichol & Dhariwal 2021) and few-step DDIM (Song, Meng, Ermon 2021) under the
  accelerations. Reported: network evaluations per image, images/s, speed-up, the defended PSNR (restorer
  applied to the purified input, against the ground truth) on the same images, and ``at_equal_psnr``: the
  fastest row within ``--equal-psnr-db`` of the baseline's defended PSNR.
* ``finetune``: one Adam step of the restorer on an L2 loss; batch 1 float32 vs batched accelerations.
* ``evaluate``: restorer forward + PSNR + SSIM; per image vs batched.

Data: crops of the photos embedded in scikit-image, degraded on the fly by a Gaussian blur plus haze (a
stand-in for the UDC simulator, which runs on CPU in numpy and is benchmarked by ``benchmarks.simulate``).
Writes ``benchmarks/results/speed_<device>[_quick].json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS, environment  # noqa: E402
from udcshield.accel import Acceleration, accelerate, accelerate_purifier  # noqa: E402
from udcshield.attacks.pgd import PGD  # noqa: E402
from udcshield.data.sources import load_photo  # noqa: E402
from udcshield.defenses import DiffusionPurifier, purify_ddim  # noqa: E402
from udcshield.evaluation.metrics import psnr, ssim  # noqa: E402
from udcshield.models import available_sizes, count_parameters, create_restorer  # noqa: E402
from udcshield.seeding import torch_generator  # noqa: E402
from udcshield.training.diffusion import train_purifier  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
#: Dense bf16 tensor-core peak (FLOP/s, datasheet, SXM parts) by device-name fragment.
PEAK_BF16 = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}
EPS = 8 / 256
PGD_STEPS = 20


def parse_variant(text: str) -> Acceleration:
    """``fp32``, ``bf16``, ``bf16+cl``, ``bf16+cl+compile``, ``fp32+compile-reduce-overhead`` ... → Acceleration."""
    amp, channels_last, mode = "none", False, "none"
    for part in text.split("+"):
        if part == "fp32":
            amp = "none"
        elif part == "bf16":
            amp = "bf16"
        elif part == "cl":
            channels_last = True
        elif part == "compile":
            mode = "default"
        elif part.startswith("compile-"):
            mode = part[len("compile-"):]
        else:
            raise ValueError(f"unknown variant part {part!r} in {text!r} (fp32, bf16, cl, compile, compile-<mode>)")
    return Acceleration(amp=amp, channels_last=channels_last, compile=mode)


def sync(device: torch.device) -> None:
    """Wait for queued kernels (CUDA) so wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls of ``fn`` (after the caller's warm-up) and the last result."""
    times, out = [], None
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def photo_pairs(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets): n random size x size crops (N, 3, size, size) float32 in [0, 1] of the embedded
    photos, and their degraded versions (Gaussian blur sigma 1.5 px, then 0.85 x + 0.08 haze)."""
    gen = torch_generator(seed, "bench/speed/crops")
    photos = [torch.from_numpy(load_photo(name)) for name in PHOTOS]
    crops = []
    for i in range(n):
        img = photos[i % len(photos)]
        if min(img.shape[-2:]) < size:
            img = F.interpolate(img[None], scale_factor=size / min(img.shape[-2:]) + 1e-3, mode="bilinear",
                                align_corners=False)[0]
        top = int(torch.randint(0, img.shape[-2] - size + 1, (1,), generator=gen))
        left = int(torch.randint(0, img.shape[-1] - size + 1, (1,), generator=gen))
        crops.append(img[:, top:top + size, left:left + size])
    targets = torch.stack(crops).float().clamp(0.0, 1.0)
    radius = 4
    xs = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel1d = torch.exp(-xs ** 2 / (2 * 1.5 ** 2))
    kernel = (kernel1d[:, None] * kernel1d[None, :])
    kernel = (kernel / kernel.sum()).expand(3, 1, -1, -1)
    blurred = F.conv2d(F.pad(targets, (radius,) * 4, mode="reflect"), kernel, groups=3)
    return (0.85 * blurred + 0.08).clamp(0.0, 1.0), targets


def train_briefly(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, steps: int, batch: int,
                  device: torch.device, seed: int) -> float:
    """Adam (lr 2e-4, gradient norm clipped at 1) on L2 for ``steps`` steps on random batches of the pairs;
    returns the last loss. (At lr 1e-3 without clipping the paper-size DISCNet diverged.)"""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    gen = torch_generator(seed, "bench/speed/train")
    x_all, y_all = inputs.to(device), targets.to(device)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        idx = torch.randint(0, x_all.shape[0], (min(batch, x_all.shape[0]),), generator=gen).to(device)
        loss = F.mse_loss(model(x_all[idx]), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    return float(loss.detach())


def pgd_flops(model: torch.nn.Module, size: int, device: torch.device) -> int:
    """FLOPs (conv/matmul) of one PGD step on one image: forward + backward to the input."""
    x = torch.rand(1, 3, size, size, device=device, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        model(x).square().mean().backward()  # FlopCounterMode does not support autograd.grad
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def device_peak(device: torch.device) -> float | None:
    """Dense bf16 peak FLOP/s of a known GPU, else None."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


def restore_psnr(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                 batch: int) -> float:
    """Mean PSNR (dB) of the float32 eager ``model`` on x (N, 3, H, W) against y, in batches."""
    outs = []
    with torch.no_grad():
        for lo in range(0, x.shape[0], batch):
            outs.append(model(x[lo:lo + batch].to(device)).clamp(0, 1).cpu())
    return float(psnr(torch.cat(outs), y).mean())


def bench_attack(model, x, y, args, device, variants, peak, flops_step) -> tuple[dict, torch.Tensor]:
    """PGD-20 per-image float32 baseline vs batched accelerations; returns (rows, fp32 batched adversarials)."""
    n_base = min(args.baseline_images, x.shape[0])
    atk = PGD(model, eps=EPS, steps=PGD_STEPS, random_start=True)
    atk(x[:1].to(device), y[:1].to(device), seeds=[0])  # warm-up
    sync(device)
    start = time.perf_counter()
    for i in range(n_base):
        atk(x[i:i + 1].to(device), y[i:i + 1].to(device), seeds=[i])
    sync(device)
    base_s = (time.perf_counter() - start) / n_base
    rows: dict[str, Any] = {"baseline_per_image_fp32": {"seconds_per_image": base_s, "images_per_s": 1 / base_s,
                                                        "images": n_base}}
    print(f"  attack baseline  {1 / base_s:9.2f} img/s", flush=True)
    x_dev, y_dev = x.to(device), y.to(device)
    reference_adv, reference_psnr = None, None
    for label, acc in variants:
        wrapped = accelerate(model, acc, device, allow_cpu_amp=True)
        batch = args.batch
        atk = PGD(wrapped, eps=EPS, steps=PGD_STEPS, random_start=True)
        start = time.perf_counter()
        atk(x_dev[:batch], y_dev[:batch], seeds=list(range(batch)))  # warm-up (compiles)
        sync(device)
        warm_s = time.perf_counter() - start

        def run_all() -> torch.Tensor:
            return torch.cat([atk(x_dev[lo:lo + batch], y_dev[lo:lo + batch], seeds=list(range(lo, lo + batch)))
                              for lo in range(0, x_dev.shape[0] - batch + 1, batch)])
        n_full = (x_dev.shape[0] // batch) * batch
        seconds, adv = timed(run_all, device, args.repeats)
        adv = adv.cpu()
        attacked = restore_psnr(model, adv, y[:n_full], device, batch)
        ips = n_full / seconds
        row = {"images_per_s": ips, "speedup": ips * base_s, "batch": batch, "warmup_s": warm_s,
               "psnr_attacked": attacked, "linf": float((adv - x[:n_full]).abs().max())}
        if flops_step:
            row["tflops"] = flops_step * PGD_STEPS * ips / 1e12
            if peak:
                row["fraction_of_bf16_peak"] = flops_step * PGD_STEPS * ips / peak
        if acc == Acceleration():
            reference_adv, reference_psnr = adv, attacked
        if reference_psnr is not None:
            row["psnr_gap_vs_fp32_db"] = abs(attacked - reference_psnr)
        rows[label] = row
        print(f"  attack {label:28s} {ips:9.2f} img/s  x{row['speedup']:6.1f}  PSNR {attacked:6.2f} dB"
              + (f"  {row.get('tflops', 0):7.2f} TFLOP/s" if flops_step else ""), flush=True)
    assert reference_adv is not None, "the variant list must include fp32"
    return rows, reference_adv


def bench_purify(model, purifier, adv, y, args, device, variants) -> dict:
    """Per-image full DDPM chain (float32) vs batched DDPM / few-step DDIM under accelerations."""
    t_star = args.t_star
    n_base = min(args.baseline_images, adv.shape[0])
    batch = args.batch

    def gens(lo: int, hi: int) -> list[torch.Generator]:
        return [torch_generator(args.seed, "bench/speed/purify", i) for i in range(lo, hi)]

    def defended(purified: torch.Tensor, lo: int, hi: int) -> float:
        return restore_psnr(model, purified, y[lo:hi], device, batch)

    accelerate_purifier(purifier, Acceleration(), device)
    with torch.no_grad():
        purifier.purify(adv[:1].to(device), t_star=t_star, generator=gens(0, 1))  # warm-up
        sync(device)
        start = time.perf_counter()
        base_out = torch.cat([purifier.purify(adv[i:i + 1].to(device), t_star=t_star, generator=gens(i, i + 1)).cpu()
                              for i in range(n_base)])
        sync(device)
    base_s = (time.perf_counter() - start) / n_base
    rows: dict[str, Any] = {"baseline_per_image_ddpm_fp32": {
        "network_evals_per_image": t_star, "seconds_per_image": base_s, "images_per_s": 1 / base_s,
        "images": n_base, "defended_psnr_baseline_images": defended(base_out, 0, n_base)}}
    print(f"  purify baseline  {1 / base_s:9.2f} img/s  defended PSNR {rows['baseline_per_image_ddpm_fp32']['defended_psnr_baseline_images']:6.2f}",
          flush=True)
    full = f"ddpm_full_{t_star}"
    runner = None  # the noise predictor of the variant being measured (read by the samplers when called)
    samplers = {full: (t_star, lambda x, g: purifier.purify(x, t_star=t_star, generator=g, noise_predictor=runner))}
    for k in args.ddpm_steps:
        samplers[f"ddpm_{k}"] = (k, lambda x, g, k=k: purifier.purify(x, t_star=t_star, num_steps=k, generator=g,
                                                                      noise_predictor=runner))
    for k in args.ddim_steps:
        samplers[f"ddim_{k}"] = (k, lambda x, g, k=k: purify_ddim(purifier, x, t_star=t_star, num_steps=k, generator=g,
                                                                  noise_predictor=runner))
    adv_dev = adv.to(device)
    n_full = (adv.shape[0] // batch) * batch
    for label, acc in variants:
        runner = accelerate_purifier(purifier, acc, device, allow_cpu_amp=True)
        for name, (nfe, fn) in samplers.items():
            if name == full and acc.enabled and args.quick:
                continue
            with torch.no_grad():
                start = time.perf_counter()
                fn(adv_dev[:batch], gens(0, batch))  # warm-up (compiles)
                sync(device)
                warm_s = time.perf_counter() - start

                def run_all() -> torch.Tensor:
                    return torch.cat([fn(adv_dev[lo:lo + batch], gens(lo, lo + batch)).cpu()
                                      for lo in range(0, n_full, batch)])
                seconds, out = timed(run_all, device, args.repeats)
            ips = n_full / seconds
            row = {"network_evals_per_image": nfe, "images_per_s": ips, "speedup": ips * base_s, "batch": batch,
                   "warmup_s": warm_s, "defended_psnr": defended(out, 0, n_full),
                   "defended_psnr_baseline_images": defended(out[:n_base], 0, n_base)}
            rows[f"{name}/{label}"] = row
            print(f"  purify {name + '/' + label:34s} nfe {nfe:3d} {ips:9.2f} img/s  x{row['speedup']:7.1f}  "
                  f"defended PSNR {row['defended_psnr_baseline_images']:6.2f} (all {row['defended_psnr']:6.2f})",
                  flush=True)
    accelerate_purifier(purifier, Acceleration(), device)
    rows["at_equal_psnr"] = best = fastest_at_equal_psnr(rows, args.equal_psnr_db)
    if best:
        print(f"  purify at equal defended PSNR (within {args.equal_psnr_db} dB): {best['row']} "
              f"x{best['speedup']:.1f} ({best['psnr_gap_db']:+.2f} dB)", flush=True)
    return rows


def fastest_at_equal_psnr(rows: dict[str, Any], tolerance_db: float) -> dict[str, Any]:
    """The fastest purification row whose defended PSNR, on the images the per-image baseline saw, is at
    most ``tolerance_db`` below the baseline's (the issue's "at equal defended PSNR"); ``{}`` if none."""
    base = rows["baseline_per_image_ddpm_fp32"]["defended_psnr_baseline_images"]
    eligible = {name: row for name, row in rows.items()
                if "speedup" in row and row["defended_psnr_baseline_images"] >= base - tolerance_db}
    if not eligible:
        return {}
    name, row = max(eligible.items(), key=lambda item: item[1]["speedup"])
    return {"row": name, "speedup": row["speedup"], "images_per_s": row["images_per_s"],
            "psnr_gap_db": row["defended_psnr_baseline_images"] - base, "tolerance_db": tolerance_db}


def bench_finetune(model, x, y, args, device, variants) -> dict:
    """One Adam step on L2: batch 1 float32 (per image) vs batched accelerations; images/s."""
    rows: dict[str, Any] = {}
    cases = [("baseline_batch1_fp32", Acceleration(), 1)] + [(label, acc, args.batch) for label, acc in variants]
    for label, acc, batch in cases:
        net = copy.deepcopy(model).train()
        wrapped = accelerate(net, acc, device, allow_cpu_amp=True)
        opt = torch.optim.Adam(net.parameters(), lr=1e-5)
        xb, yb = x[:batch].to(device), y[:batch].to(device)

        def step() -> None:
            loss = F.mse_loss(wrapped(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        start = time.perf_counter()
        step()
        sync(device)
        warm_s = time.perf_counter() - start
        seconds, _ = timed(step, device, max(args.repeats, 3))
        rows[label] = {"images_per_s": batch / seconds, "batch": batch, "warmup_s": warm_s}
    base = rows["baseline_batch1_fp32"]["images_per_s"]
    for row in rows.values():
        row["speedup"] = row["images_per_s"] / base
    print("  finetune " + "  ".join(f"{k} {v['images_per_s']:.1f} img/s" for k, v in rows.items()), flush=True)
    return rows


def bench_evaluate(model, x, y, args, device) -> dict:
    """Restorer forward + PSNR + SSIM: one image at a time vs batches (both float32, eager)."""
    def run(batch: int) -> tuple[float, float]:
        psnrs, ssims = [], []
        with torch.no_grad():
            for lo in range(0, x.shape[0], batch):
                out = model(x[lo:lo + batch].to(device)).clamp(0, 1)
                yb = y[lo:lo + batch].to(device)
                psnrs.append(psnr(out, yb))
                ssims.append(ssim(out, yb))
        return float(torch.cat(psnrs).mean()), float(torch.cat(ssims).mean())
    run(1)
    rows = {}
    for label, batch in (("baseline_per_image_fp32", 1), ("batched_fp32", args.batch)):
        seconds, (mean_psnr, mean_ssim) = timed(lambda batch=batch: run(batch), device, args.repeats)
        rows[label] = {"images_per_s": x.shape[0] / seconds, "batch": batch, "psnr": mean_psnr, "ssim": mean_ssim}
    rows["batched_fp32"]["speedup"] = rows["batched_fp32"]["images_per_s"] / rows["baseline_per_image_fp32"]["images_per_s"]
    print(f"  evaluate per-image {rows['baseline_per_image_fp32']['images_per_s']:.1f} img/s, batched "
          f"{rows['batched_fp32']['images_per_s']:.1f} img/s", flush=True)
    return rows


def save(result: dict, path: Path, start: float) -> None:
    """Write the record so far (after every section: a run cut short keeps what it measured)."""
    result["total_seconds"] = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, 32x32, few images (CPU, about a minute)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--models", default=None, help="comma-separated restorers (default: resunet, discnet)")
    parser.add_argument("--size-preset", default=None, help="paper | tiny | default (default: paper; quick: tiny)")
    parser.add_argument("--size", type=int, default=None, help="image side (default 256; quick 32)")
    parser.add_argument("--images", type=int, default=None, help="images per measurement (default 64; quick 8)")
    parser.add_argument("--baseline-images", type=int, default=None, help="images for the per-image loops")
    parser.add_argument("--batch", type=int, default=None, help="batch of the accelerated runs")
    parser.add_argument("--variants", default=None,
                        help="comma-separated accelerations, first must be fp32 (default on CUDA: "
                             "fp32,bf16,bf16+cl,bf16+cl+compile; on CPU: fp32)")
    parser.add_argument("--purify-variants", default=None,
                        help="accelerations for purification (default on CUDA: fp32,bf16+cl,"
                             "bf16+cl+compile-reduce-overhead; on CPU: fp32)")
    parser.add_argument("--train-steps", type=int, default=None, help="restorer training steps before timing")
    parser.add_argument("--purifier-steps", type=int, default=None, help="purifier training steps")
    parser.add_argument("--purifier-channels", default=None, help="UNet widths, e.g. 64,128,256")
    parser.add_argument("--t-star", type=int, default=50)
    parser.add_argument("--ddim-steps", default="5", help="comma-separated DDIM step counts")
    parser.add_argument("--ddpm-steps", default="10", help="comma-separated strided DDPM step counts ('' for none)")
    parser.add_argument("--equal-psnr-db", type=float, default=0.1,
                        help="defended-PSNR tolerance of the 'at equal defended PSNR' purification summary")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--sections", default="attack,purify,finetune,evaluate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-budget-s", type=float, default=None,
                        help="skip the remaining models once this much time has passed")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available here")
    gpu = device.type == "cuda"
    models = (args.models or ("resunet" if args.quick else "resunet,discnet")).split(",")
    preset = args.size_preset or ("tiny" if args.quick else "paper")
    size = args.size or (32 if args.quick else 256)
    n_images = args.images or (8 if args.quick else 64)
    args.baseline_images = args.baseline_images or (2 if args.quick else 8)
    args.batch = args.batch or (4 if args.quick else 32)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.ddim_steps = [int(k) for k in args.ddim_steps.split(",") if k]
    args.ddpm_steps = [int(k) for k in args.ddpm_steps.split(",") if k]
    if any(not 1 <= k <= args.t_star for k in args.ddpm_steps + args.ddim_steps):
        raise SystemExit(f"--ddpm-steps and --ddim-steps must lie in [1, t*={args.t_star}]")
    train_steps = args.train_steps if args.train_steps is not None else (20 if args.quick else 300)
    purifier_steps = args.purifier_steps if args.purifier_steps is not None else (20 if args.quick else 1500)
    channels = tuple(int(c) for c in (args.purifier_channels or ("16,32" if args.quick else "64,128,256")).split(","))
    default_variants = "fp32,bf16,bf16+cl,bf16+cl+compile" if gpu else "fp32"
    variants = [(v, parse_variant(v)) for v in (args.variants or default_variants).split(",")]
    pvariants = [(v, parse_variant(v)) for v in
                 (args.purify_variants or ("fp32,bf16+cl,bf16+cl+compile-reduce-overhead" if gpu else "fp32")).split(",")]
    if variants[0][1] != Acceleration() or pvariants[0][1] != Acceleration():
        raise SystemExit("the first variant must be fp32 (the reference for PSNR gaps)")
    if n_images < args.batch:
        raise SystemExit(f"--images ({n_images}) must be >= --batch ({args.batch})")
    sections = set(args.sections.split(","))
    unknown = sections - {"attack", "purify", "finetune", "evaluate"}
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}")
    if not gpu:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    torch.manual_seed(args.seed)

    out_path = args.out or RESULTS / f"speed_{device.type}{'_quick' if args.quick else ''}.json"
    result: dict[str, Any] = {
        "environment": environment(str(device)),
        "setup": {"quick": args.quick, "size": size, "images": n_images, "baseline_images": args.baseline_images,
                  "batch": args.batch, "preset": preset, "eps": EPS, "pgd_steps": PGD_STEPS, "t_star": args.t_star,
                  "ddim_steps": args.ddim_steps, "ddpm_steps": args.ddpm_steps,
                  "equal_psnr_db": args.equal_psnr_db, "train_steps": train_steps, "purifier_steps": purifier_steps,
                  "purifier_channels": list(channels), "repeats": args.repeats,
                  "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                  "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                  "peak_bf16_flops": device_peak(device)},
        "models": {},
    }
    start_all = time.perf_counter()
    inputs, targets = photo_pairs(n_images, size, args.seed)
    purifier = None
    if "purify" in sections:
        purifier = DiffusionPurifier(sample_size=64, block_out_channels=channels,
                                     generator=torch_generator(args.seed, "bench/speed/purifier-init"))
        t0 = time.perf_counter()
        crop = min(64, size)
        train_inputs, _ = photo_pairs(max(64, n_images), max(size, crop), args.seed + 1)
        history = train_purifier(purifier, train_inputs, iterations=purifier_steps, batch_size=32 if gpu else 8,
                                 crop_size=crop - crop % purifier.multiple, lr=1e-3, lr_min=1e-4,
                                 generator=torch_generator(args.seed, "bench/speed/purifier-train"),
                                 device=device, log_every=max(purifier_steps // 4, 1))
        result["purifier"] = {"train_seconds": time.perf_counter() - t0, "loss_last": history[-1]["loss"],
                              "parameters": count_parameters(purifier)}
        print(f"purifier: {purifier_steps} steps in {result['purifier']['train_seconds']:.1f} s, "
              f"loss {history[-1]['loss']:.4f}", flush=True)
    peak = device_peak(device)
    for name in models:
        if args.time_budget_s is not None and time.perf_counter() - start_all > args.time_budget_s:
            result["models"][name] = {"skipped": "time budget"}
            continue
        size_name = preset if preset in available_sizes(name) else "default"  # ResUNet has no paper size
        model = create_restorer(name, generator=torch_generator(args.seed, "bench/speed/init", name), size=size_name)
        t0 = time.perf_counter()
        loss = train_briefly(model, inputs, targets, train_steps, 8, device, args.seed)
        flops = pgd_flops(model, size, device)
        row: dict[str, Any] = {"size": size_name, "parameters": count_parameters(model), "train_seconds": time.perf_counter() - t0,
                               "train_loss_last": loss, "flops_per_pgd_step_per_image": flops,
                               "clean_psnr": restore_psnr(model, inputs, targets, device, args.batch),
                               "input_psnr": float(psnr(inputs, targets).mean())}
        print(f"{name}: {row['parameters']:,} parameters, clean PSNR {row['clean_psnr']:.2f} dB "
              f"(input {row['input_psnr']:.2f}), {flops / 1e9:.1f} GFLOP per PGD step", flush=True)
        result["models"][name] = row
        adv = None
        if "attack" in sections or "purify" in sections:
            row["attack"], adv = bench_attack(model, inputs, targets, args, device, variants, peak, flops)
            save(result, out_path, start_all)
        if "purify" in sections and purifier is not None and adv is not None:
            row["purify"] = bench_purify(model, purifier, adv, targets, args, device, pvariants)
            save(result, out_path, start_all)
        if "finetune" in sections:
            row["finetune"] = bench_finetune(model, inputs, targets, args, device, variants)
            save(result, out_path, start_all)
        if "evaluate" in sections:
            row["evaluate"] = bench_evaluate(model, inputs, targets, args, device)
        save(result, out_path, start_all)
        model.cpu()
        if gpu:
            torch.cuda.empty_cache()
    save(result, out_path, start_all)
    print(f"wrote {out_path} ({result['total_seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
