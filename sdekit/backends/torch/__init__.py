"""The torch backend: sdekit specifications integrated by torchsde and torchdiffeq, on the tensors' device.

Importing this package does not import torch; `simulate(..., backend="torch")` does, and says how to install
it when it is missing. `register_torch(fn, torch_fn)` declares the torch version of a Numba-only function.
"""

from sdekit.backends.torch.twins import register_torch, torch_function, torch_twin

__all__ = ["register_torch", "torch_function", "torch_twin", "require_torch"]

INSTALL_HINT = ('the torch backend needs torch, torchsde and torchdiffeq: pip install "sdekit[torch]" '
                "(on this project's machines torch==2.13.0 is a local CPU build)")


def require_torch() -> None:
    """Import torch, torchsde and torchdiffeq, or raise an SDEKitError that says how to install them."""
    from sdekit.errors import SDEKitError

    try:
        import torch  # noqa: F401
        import torchdiffeq  # noqa: F401
        import torchsde  # noqa: F401
    except ImportError as exc:
        raise SDEKitError(f"{INSTALL_HINT} ({exc})") from exc
