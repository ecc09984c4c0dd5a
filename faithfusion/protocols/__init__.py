"""Evaluation protocols that train their own runs (GenFusion's sparse-view protocol), above fusion and eval."""
