"""Numba backend: chunked, thread-parallel kernels built from a specification and a solver."""
