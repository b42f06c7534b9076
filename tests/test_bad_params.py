"""Bad-input matrix, params: refused when the params are loaded, before any work, through both command
lines (``udcshield run`` and ``python -m flows``, the ``dvc repro`` path) with exit status 2 and the same
one line naming the dotted key; the flow path never starts a flow run (harness: :mod:`tests.bad_input_matrix`).

The last rows are values that used to pass validation and fail late in a stage (a t* beyond the
purifier's diffusion steps, more strided steps than t*, a budget beyond 256/256).
"""

import pytest

from tests.bad_input_matrix import assert_clean_failure, base, case, run_both, set_params, snapshot  # noqa: F401

ROWS = [
    ("unknown-key", "simulate", {"simulate": {"optics": {"pitch": 100.0}}}, "simulate.optics.pitch"),
    ("wrong-type", "train", {"train": {"iterations": "many"}}, "train.iterations must be an integer"),
    ("wrong-type-in-a-list", "simulate", {"simulate": {"optics": {"wavelengths_nm": [610.0, "green", 470.0]}}},
     "simulate.optics.wavelengths_nm[1]"),
    ("unknown-attack", "attack", {"attack": {"attacks": [{"name": "pgdd", "budgets": [8]}]}, "sweep": {"attack": "pgdd"}},
     "attack.attacks[0]"),
    ("t-star-beyond-the-chain", "purify", {"purify": {"t_star": 5000}}, "purify.t_star"),
    ("strided-steps-beyond-t-star", "finetune", {"finetune": {"t_stars": [30, 40], "num_steps": 40}},
     "finetune.num_steps"),
    ("budget-beyond-256", "attack", {"attack": {"attacks": [{"name": "fgsm", "budgets": [300]}]}},
     "attack.attacks[0].budgets"),
    ("one-t-star-beyond-the-chain", "finetune", {"finetune": {"t_stars": [30, 5000]}}, "finetune.t_stars"),
]


@pytest.mark.parametrize("stage, override, culprit", [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_bad_params_are_refused_before_any_work(case, capsys, stage, override, culprit):
    set_params(case, **override)
    before = snapshot(case / "data")
    code, err = run_both(case, stage, capsys)
    assert code == 2 and culprit in err, err
    assert_clean_failure(case, before)
