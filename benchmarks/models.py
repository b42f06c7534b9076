"""Benchmark the built-in UDC restorers: parameters, FLOPs and forward+backward time.

Per model (the seven restorers of the study at their "paper" size, plus the ResUNet baseline at its
constructor defaults): parameter count next to the published one, FLOPs of one forward pass at
1x3xSxS counted with ``torch.utils.flop_counter.FlopCounterMode`` (matrix multiplications and
convolutions only, 2 FLOPs per multiply-add; element-wise work such as DISCNet's per-pixel dynamic
filtering or the guided filter's box sums is not counted), and the median wall time of forward +
backward (loss = mean squared output, gradients w.r.t. the weights and the input, batch 1) on CPU and,
when available, on CUDA.

    python -m benchmarks.models              # paper sizes, 256x256, CPU (+ CUDA) -> results/models_cpu.json
    python -m benchmarks.models --quick      # tiny sizes, 128x128               -> results/models_cpu_quick.json
    python -m benchmarks.models --threads 1  # on a shared, busy machine (thread contention dominates)

The whole full run stays under about 5 minutes on a 2-core CPU (few repetitions).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS, environment  # noqa: E402
from udcshield.models import PAPER_PARAMS, available_sizes, count_parameters, create_restorer

MODELS = ["dagf", "dwformer", "srudc", "discnet", "bnudc", "uformer", "udcunet", "resunet"]


def count_flops(model: torch.nn.Module, side: int) -> int:
    """FLOPs of one forward pass of ``model`` on a 1x3xside x side input (conv/matmul only)."""
    x = torch.rand(1, 3, side, side)
    counter = FlopCounterMode(display=False)
    with counter:  # not under no_grad: FlopCounterMode's module tracker needs autograd on
        model(x)
    return int(counter.get_total_flops())


def time_forward_backward(model: torch.nn.Module, side: int, device: torch.device, reps: int, warmup: int) -> list[float]:
    """Wall times (s) of ``reps`` forward+backward passes at batch 1 after ``warmup`` untimed ones."""
    model = model.to(device).train()
    x = torch.rand(1, 3, side, side, device=device)
    times = []
    for i in range(warmup + reps):
        model.zero_grad(set_to_none=True)
        inp = x.clone().requires_grad_(True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(inp).square().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    model.to("cpu")
    return times


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes at 128x128 (seconds)")
    parser.add_argument("--side", type=int, default=None, help="image side (default 256, 128 with --quick)")
    parser.add_argument("--cpu-reps", type=int, default=None, help="timed CPU repetitions (default 3)")
    parser.add_argument("--cuda-reps", type=int, default=20, help="timed CUDA repetitions")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU intra-op threads (default: torch's; use 1 on a shared, busy machine)")
    parser.add_argument("--no-cuda", action="store_true", help="skip CUDA even when available")
    parser.add_argument("--models", nargs="*", default=MODELS, help="restorer names")
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    side = args.side or (128 if args.quick else 256)
    cpu_reps = args.cpu_reps or 3
    use_cuda = torch.cuda.is_available() and not args.no_cuda
    out = args.out or RESULTS / f"models_cpu{'_quick' if args.quick else ''}.json"

    rows = []
    for name in args.models:
        size = "tiny" if args.quick else "paper"
        if size not in available_sizes(name):
            size = "default"
        model = create_restorer(name, size=size, generator=torch.Generator().manual_seed(0))
        params = count_parameters(model)
        published = PAPER_PARAMS.get(name)
        row = {"model": name, "size": size, "params": params, "published_params": published,
               "params_rel_diff": None if published is None or size != "paper" else round(params / published - 1, 4),
               "input": [1, 3, side, side], "gflops_forward": round(count_flops(model, side) / 1e9, 3)}
        cpu_times = time_forward_backward(model, side, torch.device("cpu"), cpu_reps, warmup=1)
        row["cpu_fwd_bwd_ms_median"] = round(1e3 * statistics.median(cpu_times), 1)
        row["cpu_fwd_bwd_ms_all"] = [round(1e3 * t, 1) for t in cpu_times]
        if use_cuda:
            cuda_times = time_forward_backward(model, side, torch.device("cuda"), args.cuda_reps, warmup=3)
            row["cuda_fwd_bwd_ms_median"] = round(1e3 * statistics.median(cuda_times), 2)
        rows.append(row)
        print(f"{name:9s} {size:7s} params {params / 1e6:7.3f} M (published "
              f"{'-' if published is None else f'{published / 1e6:.2f} M'})  {row['gflops_forward']:8.2f} GFLOPs  "
              f"CPU fwd+bwd {row['cpu_fwd_bwd_ms_median']:9.1f} ms"
              + (f"  CUDA {row['cuda_fwd_bwd_ms_median']:8.2f} ms" if use_cuda else ""), flush=True)

    result = {
        "benchmark": "udcshield restorers: params, forward FLOPs, forward+backward time (batch 1)",
        "environment": environment("cuda" if use_cuda else "cpu"),
        "load_average_1min": _load_average(),
        "quick": args.quick,
        "flops_note": "FlopCounterMode: conv/matmul only, 2 FLOPs per multiply-add, one forward pass",
        "results": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
