"""ProgressMeter: counts, rate, ETA and the text line, under an injected clock."""

import pytest

from udcshield.progress import ProgressMeter, format_eta, format_progress, is_progress_row


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_rows_rate_and_eta_follow_the_clock():
    clock, seen = FakeClock(), []
    meter = ProgressMeter(10, "evaluate", seen.append, clock=clock)
    assert meter.row() == {"done": 0, "total": 10, "rate": 0.0, "eta_s": None, "elapsed_s": 0.0}
    clock.t += 2.0
    row = meter.update(4, cell="a/b")
    assert row == {"done": 4, "total": 10, "rate": 2.0, "eta_s": 3.0, "elapsed_s": 2.0, "cell": "a/b"}
    assert seen == [row]
    clock.t += 3.0
    last = meter.update(6)
    assert last["done"] == 10 and last["rate"] == 2.0 and last["eta_s"] == 0.0
    assert len(seen) == 2 and seen[1] is not seen[0]


def test_no_time_elapsed_gives_unknown_eta_not_a_division_error():
    meter = ProgressMeter(3, "x", clock=FakeClock())
    row = meter.update(1)
    assert row["rate"] == 0.0 and row["eta_s"] is None


def test_empty_work_is_complete():
    row = ProgressMeter(0, "nothing", clock=FakeClock()).row()
    assert row["eta_s"] == 0.0 and format_progress(row).startswith("0/0 img (100%)")


def test_text_line_is_readable():
    clock = FakeClock()
    meter = ProgressMeter(40, "adaptive", clock=clock)
    clock.t += 4.0
    row = meter.update(12, set="resunet/base/pgd/8")
    assert meter.text(row) == "adaptive: 12/40 img (30%), 3 img/s, ETA 9s, set=resunet/base/pgd/8"


@pytest.mark.parametrize("seconds,text", [(None, "?"), (0, "0s"), (59.4, "59s"), (185, "3m05s"), (7260, "2h01m")])
def test_format_eta(seconds, text):
    assert format_eta(seconds) == text


@pytest.mark.parametrize("total", [-1, 2.5, True, "3"])
def test_bad_total_is_named(total):
    with pytest.raises(ValueError, match="total"):
        ProgressMeter(total, "x")


def test_overrun_negative_step_and_key_clash_are_refused():
    meter = ProgressMeter(2, "purify", clock=FakeClock())
    with pytest.raises(ValueError, match="exceeds the total 2"):
        meter.update(3)
    with pytest.raises(ValueError, match="non-negative"):
        meter.update(-1)
    with pytest.raises(ValueError, match="clash"):
        meter.update(1, rate=5)
    with pytest.raises(ValueError, match="label"):
        ProgressMeter(2, "")


def test_format_progress_rejects_other_rows():
    assert not is_progress_row({"step": 3, "loss": 0.1})
    with pytest.raises(ValueError, match="not a progress row"):
        format_progress({"step": 3})


def test_task_log_line_formats_meter_rows_and_plain_rows():
    from tasks.common import progress_line

    clock = FakeClock()
    meter = ProgressMeter(8, "attack", clock=clock)
    clock.t += 2.0
    assert progress_line("attack", meter.update(2)) == "attack: 2/8 img (25%), 1 img/s, ETA 6s"
    assert progress_line("train x", {"step": 5, "loss": 0.123456}) == "train x: step=5, loss=0.12346"
