"""Backends that run a specification: the NumPy reference and the Numba kernels."""
