"""The stage timer: seconds add up per stage, `take` starts again, CUDA is synchronised only when timing CUDA."""

import time

import pytest
import torch

from faithfusion.utils.timing import NO_TIMER, StageTimer


def test_stages_accumulate_and_take_resets():
    timer = StageTimer("cpu")
    for _ in range(2):
        with timer.stage("a"):
            time.sleep(0.01)
    with timer.stage("b"):
        pass
    seconds = timer.take()
    assert set(seconds) == {"a", "b"} and seconds["a"] >= 0.02 and 0 <= seconds["b"] < seconds["a"]
    assert timer.take() == {}


def test_a_failing_stage_is_still_charged():
    timer = StageTimer("cpu")
    with pytest.raises(ValueError):
        with timer.stage("a"):
            raise ValueError("boom")
    assert "a" in timer.take()


def test_disabled_timer_records_nothing():
    with NO_TIMER.stage("a"):
        pass
    assert NO_TIMER.take() == {}


def test_cuda_is_synchronised_only_for_a_cuda_timer(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: calls.append(a))
    with StageTimer("cpu").stage("a"):
        pass
    assert calls == []
    with StageTimer(torch.device("cuda")).stage("a"):
        pass
    assert len(calls) == 2  # before and after the stage
