"""fixers."""
