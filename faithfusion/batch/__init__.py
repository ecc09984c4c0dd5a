"""A batch of scenes, one job each (synthesise if needed -> recon or fuse -> evaluate), on any scheduler.

The job functions here know nothing of the scheduler: `run.run_batch` takes an executor (`executors.py`:
in-process, or Ray through `ray_driver.py`), so the plan, the resume rules and the summary are tested without Ray.
"""
