"""Benchmark: strength (PSNR drop) and cost of every attack on one trained restorer.

    python -m benchmarks.attacks [--data data] [--model resunet] [--budget 8] [--images 16] [--quick]

Uses the artifacts of a finished ``dvc repro`` (the test store and ``data/restorers/<model>``), runs each
attack of the suite through the same code path as the attack stage, and writes
benchmarks/results/attacks_<device>.json: clean and attacked PSNR, realised norms, iterations,
forward-backward passes, queries and seconds per attack.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.common import environment, write_result
from udcshield.config import AttackSpec, params_from_dict
from udcshield.evaluation.metrics import psnr
from udcshield.pipeline.attack import craft, load_restorer
from udcshield.pipeline.common import apply_batched, load_pairs
from udcshield.pipeline.layout import Layout, configure_torch, resolve_device

SUITE = {
    "fgsm": {},
    "pgd": {"steps": 20, "random_start": True},
    "bim": {},
    "mifgsm": {"steps": 10},
    "pgd_l2": {"steps": 20},
    "cw": {"binary_search_steps": 9, "steps": 100, "tau_db": 3.0},
    "simba": {"max_iters": 1000, "max_queries": 2001, "step": 4 / 256},
    "square": {"max_queries": 1000},
    "universal": {"steps": 200},
}
QUICK = {"cw": {"binary_search_steps": 3, "steps": 20}, "simba": {"max_iters": 100, "max_queries": 201},
         "square": {"max_queries": 100}, "universal": {"steps": 20}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data")
    parser.add_argument("--model", default="resunet")
    parser.add_argument("--budget", type=int, default=8)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="fewer iterations and queries for the costly attacks")
    args = parser.parse_args()
    configure_torch()
    device = resolve_device(args.device)
    layout = Layout(Path(args.data))
    inputs, targets, ids = (t[:args.images] for t in load_pairs(layout.test_store))
    train = load_pairs(layout.train_store)[:2]
    source = f"{args.model}/base"
    model = load_restorer(layout, source)
    clean = psnr(apply_batched(model, inputs, 16, device), targets).mean().item()
    rows = {}
    for name, kwargs in SUITE.items():
        kwargs = {**kwargs, **(QUICK.get(name, {}) if args.quick else {})}
        spec = AttackSpec(name=name, budgets=(args.budget,), kwargs=kwargs)
        params = params_from_dict({"device": args.device, "sweep": {"enabled": False},
                                   "attack": {"models": ["base"], "batch_size": 16,
                                              "attacks": [{"name": name, "kwargs": kwargs}]}})
        start = time.perf_counter()
        adv, attrs = craft(model, spec, args.budget, inputs, targets, ids, params, source, device, train)
        seconds = time.perf_counter() - start
        attacked = psnr(apply_batched(model, torch.from_numpy(adv), 16, device), targets).mean().item()
        rows[name] = {"kwargs": kwargs, "psnr": attacked, "psnr_drop": clean - attacked, "seconds": seconds,
                      **{k: attrs[k] for k in ("norm", "norm_max", "linf_max", "l2_mean", "cost")}}
        print(f"{name:10s} PSNR {attacked:6.2f} dB (drop {clean - attacked:5.2f})  {seconds:7.1f} s  {attrs['cost']}")
    result = {"environment": environment(str(device)), "model": source, "budget": args.budget,
              "images": int(inputs.shape[0]), "clean_psnr": clean, "attacks": rows, "quick": args.quick}
    print(f"clean PSNR {clean:.2f} dB -> {write_result(f'attacks_{device.type}' + ('_quick' if args.quick else ''), result)}")


if __name__ == "__main__":
    main()
