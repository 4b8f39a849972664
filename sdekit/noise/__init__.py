"""Reproducible noise keyed by (seed, path, stream): Numba generator and NumPy reference."""

from sdekit.noise.reference import PathStreams
from sdekit.noise.streams import STREAM_AUX, STREAM_BROWNIAN, noise_tables, path_normals

__all__ = ["PathStreams", "STREAM_AUX", "STREAM_BROWNIAN", "noise_tables", "path_normals"]
