"""Side-by-side jobs: the threads of a finished job reach the ones still running or waiting; failures name the job."""

import json
import time
from pathlib import Path

import pytest

from faithfusion.utils.side_by_side import Job, SideBySideError, run_side_by_side, supported

pytestmark = pytest.mark.skipif(not supported(), reason="needs SIGUSR1")


def record_threads(path: str, seconds: float) -> None:
    """Write the job's thread count at its start, then wait up to `seconds` for one more thread."""
    import torch

    start = torch.get_num_threads()
    deadline = time.monotonic() + seconds
    while torch.get_num_threads() == start and time.monotonic() < deadline:
        time.sleep(0.02)
    Path(path).write_text(json.dumps({"start": start, "end": torch.get_num_threads()}))


def fail(message: str) -> None:
    raise ValueError(message)


def test_a_finished_jobs_thread_goes_to_the_one_still_running(tmp_path):
    quick, slow = tmp_path / "quick.json", tmp_path / "slow.json"
    out = run_side_by_side([Job("quick", record_threads, (str(quick), 0.0)),
                            Job("slow", record_threads, (str(slow), 60.0))], threads=2)
    assert json.loads(quick.read_text()) == {"start": 1, "end": 1}
    assert json.loads(slow.read_text()) == {"start": 1, "end": 2}  # it waited for the gift, not the deadline
    assert out["slow"]["threads_at_end"] == 2 and out["slow"]["seconds"] < 60


def test_a_waiting_job_starts_with_the_threads_of_the_one_that_ended(tmp_path):
    paths = [tmp_path / f"{k}.json" for k in range(3)]
    out = run_side_by_side([Job(f"job{k}", record_threads, (str(p), 0.0)) for k, p in enumerate(paths)], threads=2)
    assert sorted(out) == ["job0", "job1", "job2"]
    assert [json.loads(p.read_text())["start"] for p in paths] == [1, 1, 1]


def test_a_failed_job_is_named_with_its_error(tmp_path):
    with pytest.raises(SideBySideError, match="job broken failed:(.|\n)*ValueError: the reason"):
        run_side_by_side([Job("broken", fail, ("the reason",)),
                          Job("waits", record_threads, (str(tmp_path / "w.json"), 60.0))], threads=2)


def test_names_must_be_distinct():
    with pytest.raises(ValueError, match="distinct"):
        run_side_by_side([Job("a", fail, ("x",)), Job("a", fail, ("y",))], threads=2)
