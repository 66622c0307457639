"""Benchmarks whose results are written to docs/ (run each as ``python -m benchmarks.<name>``)."""
