"""Reproducible noise keyed by (seed, path, stream): Numba generators and the NumPy reference.

`path_normals`: per-path xoshiro256++ streams (ziggurat); `counter_normals`: the counter-based generator whose
numbers the torch backend reproduces on any device (`sdekit.backends.torch.counter_noise`); `BrownianPath`: W(t) at
any time, a virtual Brownian tree on the counter generator.
"""

from sdekit.noise.brownian_path import BrownianPath
from sdekit.noise.counter import counter_normals
from sdekit.noise.inverse_normal import normal_quantile
from sdekit.noise.reference import PathStreams
from sdekit.noise.streams import STREAM_AUX, STREAM_BROWNIAN, noise_tables, path_normals

__all__ = ["BrownianPath", "PathStreams", "STREAM_AUX", "STREAM_BROWNIAN", "counter_normals", "noise_tables",
           "normal_quantile", "path_normals"]
