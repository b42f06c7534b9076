"""Dynamic per-pixel filtering (DISCNet's dynamic skip connections, Feng et al. CVPR 2021): unfold vs
shifted multiply-adds, eager and under ``torch.compile``, forward + backward.

    python -m benchmarks.dynamic_filter                  # CPU: about two minutes (mostly compilation)
    python -m benchmarks.dynamic_filter --device cuda --size 256 --batch 32 --preset paper

``udcshield.models.blocks.apply_dynamic_filters`` uses the unfold form eagerly and the shifted form when
traced by ``torch.compile``. This measures why, at two levels:

* ``op``: one dynamic filter on (B, C, H, W) features with k = 3, forward + backward of a squared sum,
  milliseconds per call for each form, eager and compiled;
* ``pgd_step``: one PGD step of a DISCNet (forward + backward to the input, L2 loss), images/s for eager,
  compiled with the unfold form forced, and compiled as shipped (shifted form).

Writes ``benchmarks/results/dynamic_filter_<device>.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS, environment  # noqa: E402
from benchmarks.speed import sync, timed  # noqa: E402
from udcshield.models import blocks, create_restorer  # noqa: E402
from udcshield.seeding import torch_generator  # noqa: E402

KERNEL = 3


@contextmanager
def compiled_form(form: str) -> Iterator[None]:
    """Make ``torch.compile`` trace the ``form`` ("unfold" or "shifted") of the dynamic filter."""
    shipped = blocks._dynamic_filters_shifted
    if form == "unfold":
        blocks._dynamic_filters_shifted = blocks._dynamic_filters_unfold
    torch._dynamo.reset()
    try:
        yield
    finally:
        blocks._dynamic_filters_shifted = shipped
        torch._dynamo.reset()


def time_call(fn: Callable[[], Any], device: torch.device, repeats: int) -> tuple[float, float]:
    """(seconds of the first call, including any compilation; median seconds of ``repeats`` later calls)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    first = time.perf_counter() - start
    fn()
    return first, timed(fn, device, repeats)[0]


def bench_op(shape: tuple[int, int, int, int], device: torch.device, repeats: int,
             backend: str = "inductor") -> dict[str, Any]:
    """Milliseconds per forward + backward of one dynamic filter on features of ``shape`` (B, C, H, W)."""
    b, c, h, w = shape
    g = torch_generator(0, "bench/dynamic-filter/op", "x".join(map(str, shape)))
    feat = torch.randn(b, c, h, w, generator=g).to(device).requires_grad_()
    filters = torch.randn(b, c, KERNEL * KERNEL, h, w, generator=g).to(device).requires_grad_()
    row: dict[str, Any] = {"shape": list(shape)}
    forms = {"unfold": blocks._dynamic_filters_unfold, "shifted": blocks._dynamic_filters_shifted}
    for mode in ("eager", "compiled"):
        for name, form in forms.items():
            torch._dynamo.reset()
            run = torch.compile(form, backend=backend) if mode == "compiled" else form

            def step(run: Callable[..., torch.Tensor] = run) -> None:
                feat.grad = filters.grad = None
                run(feat, filters, KERNEL).square().sum().backward()

            first, seconds = time_call(step, device, repeats)
            row[f"{mode}_{name}_ms"] = seconds * 1e3
            if mode == "compiled":
                row[f"compiled_{name}_first_call_s"] = first
    torch._dynamo.reset()
    print(f"  op {shape}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if k.endswith("_ms")), flush=True)
    return row


def bench_pgd_step(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Images/s of one PGD step (forward + backward to the input) through a DISCNet: eager, compiled with
    the unfold form, compiled with the shifted form (as shipped)."""
    model = create_restorer("discnet", generator=torch_generator(0, "bench/dynamic-filter/init"),
                            size=args.preset).to(device).eval()
    g = torch_generator(0, "bench/dynamic-filter/weights")
    for p in model.parameters():  # the zero-initialized output layer would hide the body from the gradient
        p.requires_grad_(False)
        if not p.any():
            p.copy_(0.01 * torch.randn(p.shape, generator=g))
    g = torch_generator(0, "bench/dynamic-filter/data")  # inputs
    x = torch.rand(args.batch, 3, args.size, args.size, generator=g).to(device)
    y = torch.rand(args.batch, 3, args.size, args.size, generator=g).to(device)

    def make_step(net: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], torch.Tensor]:
        def step() -> torch.Tensor:
            adv = x.clone().requires_grad_()
            (grad,) = torch.autograd.grad(F.mse_loss(net(adv), y), adv)
            return grad
        return step

    row: dict[str, Any] = {"preset": args.preset, "size": args.size, "batch": args.batch,
                           "parameters": sum(p.numel() for p in model.parameters())}
    first, seconds = time_call(make_step(model), device, args.repeats)
    row["eager_images_per_s"] = args.batch / seconds
    reference = make_step(model)()
    for form in ("unfold", "shifted"):
        with compiled_form(form):
            step = make_step(torch.compile(model, backend=args.backend))
            first, seconds = time_call(step, device, args.repeats)
            row[f"compiled_{form}_images_per_s"] = args.batch / seconds
            row[f"compiled_{form}_first_call_s"] = first
            row[f"compiled_{form}_grad_rel_diff"] = float((step() - reference).abs().max() / reference.abs().max())
    row["shifted_over_unfold"] = row["compiled_shifted_images_per_s"] / row["compiled_unfold_images_per_s"]
    print("  pgd step: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, float)), flush=True)
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--preset", default="tiny", help="DISCNet size preset (tiny | default | paper)")
    parser.add_argument("--size", type=int, default=64, help="image side of the PGD step")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--shapes", default="4x32x128x128,4x64x64x64,4x128x32x32",
                        help="op-level feature shapes BxCxHxW, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (eager: trace only, for tests)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(2)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",") if s]
    if any(len(s) != 4 for s in shapes):
        raise SystemExit(f"--shapes: each entry must be BxCxHxW, got {args.shapes!r}")
    start = time.perf_counter()
    result: dict[str, Any] = {"environment": environment(str(device)), "kernel_size": KERNEL,
                              "backend": args.backend,
                              "op": [bench_op(s, device, args.repeats, args.backend) for s in shapes],  # type: ignore[arg-type]
                              "pgd_step": bench_pgd_step(args, device)}
    result["total_seconds"] = time.perf_counter() - start
    out = args.out or RESULTS / f"dynamic_filter_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out} ({result['total_seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
