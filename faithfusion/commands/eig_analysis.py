"""`faithfusion eig-analysis`: EIG against the true error of lane-shifted renders of a run."""

from faithfusion.eig.analysis import AnalysisConfig, run_analysis

__all__ = ["AnalysisConfig", "run_analysis"]
