"""How a problem or target travels to the workers: pickled with its importable Numba functions by name.

Pickled by value, a Numba dispatcher is rebuilt in the worker as a new function, which the disk cache of the kernels
does not recognise (`sdekit.backends.numba.disk_cache.cacheable`), so every worker would compile its kernels again
(measured on MALA: 7 s per worker, against 2 s when the worker loads the cached kernel).
"""

from __future__ import annotations

import importlib
import io
from typing import Any

from sdekit.backends.numba.disk_cache import import_path


def _attribute(module: str, name: str) -> Any:
    """``module.name``, imported: how an importable njit function is unpickled (`dumps_by_name`)."""
    return getattr(importlib.import_module(module), name)


def dumps_by_name(obj: Any) -> bytes:
    """``obj`` pickled (cloudpickle) with every importable Numba function by its module and name: pickled by value,
    a dispatcher is rebuilt as a new one in the worker, which the disk cache of the kernels does not recognise
    (`sdekit.backends.numba.disk_cache.cacheable`), so every worker would compile them again."""
    import cloudpickle
    from numba.core.dispatcher import Dispatcher

    class ByName(cloudpickle.Pickler):
        def reducer_override(self, o: Any) -> Any:
            if isinstance(o, Dispatcher):
                path = import_path(o)
                if path is not None:
                    return _attribute, path
            return super().reducer_override(o)

    buffer = io.BytesIO()
    ByName(buffer).dump(obj)
    return buffer.getvalue()
