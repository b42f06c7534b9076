"""Benchmark purification samplers: network evaluations, throughput and purified PSNR.

Compares, for one DDPM purifier (Ho et al. 2020) used as in DiffPure (Nie et al. 2022) / Song et al.
(arXiv 2402.13629):

* DDPM, full reverse chain from t* (t* network evaluations);
* DDPM, strided chain (Nichol & Dhariwal 2021 respacing with exact posteriors);
* DDIM, eta = 0 (Song, Meng, Ermon 2021), 5 and 10 steps;
* DDPM strided with GDMP input guidance (Wang et al. 2022).

Inputs are smooth synthetic 32x32 images (tone-mapped domain, (N, 3, H, W) float32 in [0, 1]), clean
and with a random ±eps sign perturbation (a stand-in for an attack budget). PSNR (8-bit, BasicSR
convention, :func:`udcshield.evaluation.metrics.psnr`) is measured against the clean image.

Without ``--purifier`` a small purifier is trained for a few hundred steps on such images (the numbers
then describe a weak model: they compare samplers, not the final defense).

Usage::

    python benchmarks/purify.py --quick            # < 2 min on CPU
    python benchmarks/purify.py --purifier runs/x/purifier --t-star 100

Writes ``benchmarks/results/purify_cpu.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from udcshield.defenses import (
    DefendedRestorer,
    DiffusionPurifier,
    NoiseDraw,
    guided_purify,
    load_purifier,
    purify_ddim,
    strided_timesteps,
)
from udcshield.evaluation.metrics import psnr
from udcshield.seeding import derive_seed, torch_generator
from udcshield.training.diffusion import train_purifier


def smooth_images(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 3, size, size) float32 smooth images in [0, 1]: bicubic-upsampled random 4x4 and 8x8 grids."""
    coarse = torch.rand(n, 3, 4, 4, generator=generator)
    mid = torch.rand(n, 3, 8, 8, generator=generator)
    img = 0.7 * F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False) \
        + 0.3 * F.interpolate(mid, size=(size, size), mode="bicubic", align_corners=False)
    return img.clamp(0.0, 1.0)


def sign_perturbation(x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    """x + eps * random signs, clipped to [0, 1] (same shape as x)."""
    signs = torch.randint(0, 2, x.shape, generator=generator, dtype=torch.int64).to(x.dtype) * 2 - 1
    return (x + eps * signs).clamp(0.0, 1.0)


def run_method(fn, x: torch.Tensor, clean: torch.Tensor, batch: int, seed: int, name: str) -> tuple[float, float]:
    """Purify ``x`` in batches with per-image generators; return (images/s, mean PSNR vs ``clean``)."""
    outputs = []
    start = time.perf_counter()
    with torch.no_grad():
        for lo in range(0, x.shape[0], batch):
            gens = [torch_generator(seed, f"bench/{name}", i) for i in range(lo, min(lo + batch, x.shape[0]))]
            outputs.append(fn(x[lo:lo + batch], gens))
    seconds = time.perf_counter() - start
    out = torch.cat(outputs)
    return x.shape[0] / seconds, float(psnr(out, clean).mean())


def gradient_costs(purifier: DiffusionPurifier, x: torch.Tensor, t_star: int, num_steps: int,
                   repeats: int) -> dict:
    """Seconds per forward+backward (input gradient) through purify(DDIM, num_steps) → identity restorer
    for the adaptive-attack gradient modes (full, full + checkpointing, BPDA of Athalye et al. 2018)."""
    costs = {}
    for label, mode, ckpt in (("full", "full", False), ("full_checkpoint", "full", True), ("bpda", "bpda", False)):
        model = DefendedRestorer(purifier, torch.nn.Identity(), t_star=t_star, num_steps=num_steps, sampler="ddim",
                                 gradient=mode, checkpoint=ckpt).eval()
        seeds = list(range(x.shape[0]))
        start = time.perf_counter()
        for r in range(repeats):
            a = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(model(a, NoiseDraw(seeds, r)).square().sum(), a)
        costs[label] = {"seconds_per_grad": (time.perf_counter() - start) / repeats,
                        "grad_abs_mean": float(grad.abs().mean())}
    return costs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--purifier", type=Path, default=None, help="checkpoint folder (save_purifier format)")
    parser.add_argument("--quick", action="store_true", help="small model, few images (< 2 min on CPU)")
    parser.add_argument("--t-star", type=int, default=50, help="diffusion depth t* (default 50 of T=1000)")
    parser.add_argument("--strided-steps", type=int, default=10)
    parser.add_argument("--train-steps", type=int, default=None)
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--eps", type=float, default=8 / 256, help="random sign perturbation (image domain)")
    parser.add_argument("--guidance-scale", type=float, default=50.0)
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (default 1: small models on a shared CPU are fastest single-threaded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "purify_cpu.json")
    args = parser.parse_args(argv)
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    n_images = args.images or (16 if args.quick else 64)
    train_steps = args.train_steps if args.train_steps is not None else (400 if args.quick else 1500)
    crop = min(16, args.size) if args.quick else args.size  # quick: train on crops (convolutional UNet)
    batch = 8 if args.quick else 16

    data_gen = torch_generator(args.seed, "bench/data")
    train_info: dict = {}
    if args.purifier is not None:
        purifier = load_purifier(args.purifier)
        train_info = {"checkpoint": str(args.purifier)}
    else:
        purifier = DiffusionPurifier(sample_size=args.size, block_out_channels=(16, 32) if args.quick else (32, 64),
                                     generator=torch_generator(args.seed, "bench/init"))
        train_set = smooth_images(512, args.size, data_gen)
        start = time.perf_counter()
        history = train_purifier(purifier, train_set, iterations=train_steps, batch_size=16, crop_size=crop,
                                 lr=2e-3, lr_min=1e-4, generator=torch_generator(args.seed, "bench/train"),
                                 log_every=max(train_steps // 5, 1))
        train_info = {"train_steps": train_steps, "train_crop": crop,
                      "train_seconds": time.perf_counter() - start,
                      "loss_first": history[0]["loss"], "loss_last": history[-1]["loss"],
                      "block_out_channels": purifier.init_kwargs["block_out_channels"]}
    purifier.eval()
    t_star = args.t_star
    clean = smooth_images(n_images, args.size, data_gen)
    perturbed = sign_perturbation(clean, args.eps, torch_generator(args.seed, "bench/perturb"))

    abar = purifier.alpha_bar(t_star)
    noise_gen = torch_generator(args.seed, "bench/noisy")
    z = purifier.to_model_space(clean) * math.sqrt(abar) \
        + math.sqrt(1 - abar) * torch.randn(clean.shape, generator=noise_gen)
    diffused = purifier.from_model_space(z / math.sqrt(abar))  # x_t* rescaled: the noise the chain must remove

    methods = {
        f"ddpm_full_t{t_star}": (len(strided_timesteps(t_star)),
                                 lambda x, g: purifier.purify(x, t_star=t_star, generator=g)),
        f"ddpm_strided_{args.strided_steps}": (args.strided_steps, lambda x, g: purifier.purify(
            x, t_star=t_star, num_steps=args.strided_steps, generator=g)),
        "ddim_5": (5, lambda x, g: purify_ddim(purifier, x, t_star=t_star, num_steps=5, generator=g)),
        "ddim_10": (10, lambda x, g: purify_ddim(purifier, x, t_star=t_star, num_steps=10, generator=g)),
        f"ddpm_strided_{args.strided_steps}_gdmp": (args.strided_steps, lambda x, g: guided_purify(
            purifier, x, t_star=t_star, num_steps=args.strided_steps, generator=g,
            guidance_scale=args.guidance_scale)),
    }
    results = {}
    for name, (nfe, fn) in methods.items():
        seed = derive_seed(args.seed, "bench/method", name)
        ips, psnr_clean = run_method(fn, clean, clean, batch, seed, name)
        _, psnr_pert = run_method(fn, perturbed, clean, batch, seed, name)
        results[name] = {"network_evals_per_image": nfe, "images_per_s": ips, "psnr_clean_input": psnr_clean,
                         "psnr_perturbed_input": psnr_pert}
        print(f"{name:28s} nfe={nfe:4d}  {ips:8.1f} img/s  PSNR clean-in {psnr_clean:6.2f} dB  "
              f"perturbed-in {psnr_pert:6.2f} dB", flush=True)

    grad_steps = 10
    grads = gradient_costs(purifier, perturbed[:batch], t_star, grad_steps, repeats=2 if args.quick else 5)
    for label, row in grads.items():
        print(f"grad ddim_{grad_steps} {label:16s} {row['seconds_per_grad']:.3f} s per batch of {batch}", flush=True)

    report = {
        "setup": {"quick": args.quick, "t_star": t_star, "alpha_bar_t_star": abar, "images": n_images,
                  "size": args.size, "batch": batch, "eps": args.eps, "guidance_scale": args.guidance_scale,
                  "threads": torch.get_num_threads(), "torch": torch.__version__,
                  "python": sys.version.split()[0], "machine": platform.machine(), **train_info},
        "baselines": {"psnr_perturbed_vs_clean": float(psnr(perturbed, clean).mean()),
                      "psnr_diffused_to_t_star_vs_clean": float(psnr(diffused, clean).mean())},
        "methods": results,
        "input_gradient_ddim_10": {"batch": batch, **grads},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
