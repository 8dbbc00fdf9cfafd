"""Benchmarks of actfast against NumPy, SciPy, numexpr and PyTorch.

Run ``python benchmarks/run.py --help``.
"""
