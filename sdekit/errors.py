"""Exceptions raised by sdekit, each naming the argument or property at fault."""

from __future__ import annotations

STEP_SIZE_COLLAPSED = "the step size collapsed on non-finite values"
STEP_SIZE_UNDERFLOW = "step size underflow (stiff or singular problem?)"


class SDEKitError(ValueError):
    """Bad input: the message names the argument and what was expected."""


class SDEKitWarning(UserWarning):
    """A result that ran but may be wrong (MCMC diagnostics, unresolved error tables, non-finite proposals):
    one line naming the number behind it. sdekit never lets other libraries' warnings through in normal use."""


class IncompatibleSolverError(SDEKitError):
    """A solver cannot integrate a problem: the message names the solver's and the problem's property."""


class NonFiniteError(FloatingPointError):
    """A path turned non-finite; `path`, `step` and `t` say where it first happened."""

    def __init__(self, path: int, step: int, t: float, what: str = "state", adaptive: bool = False):
        self.path, self.step, self.t = int(path), int(step), float(t)
        self.what, self.adaptive = what, adaptive
        remedy = ("tighten rtol / atol or check drift and diffusion there (an adaptive solve has no "
                  "on_nonfinite='mask')" if adaptive else "reduce the step size, check drift and diffusion there, "
                  "or pass on_nonfinite='mask' to drop such paths and count them")
        super().__init__(f"path {self.path} became non-finite ({what}) at step {self.step}, t = {self.t:.6g}; {remedy}")

    def with_path_offset(self, offset: int) -> NonFiniteError:
        """The same error for a solve whose row p is path offset + p of the ensemble."""
        return NonFiniteError(offset + self.path, self.step, self.t, self.what, self.adaptive)

    def __reduce__(self) -> tuple:
        """Pickle by the constructor's arguments (the error crosses process boundaries: sdekit.distributed)."""
        return type(self), (self.path, self.step, self.t, self.what, self.adaptive)


class StepSizeError(FloatingPointError):
    """The adaptive step size collapsed or the step budget ran out on a path."""

    def __init__(self, path: int, step: int, t: float, reason: str):
        self.path, self.step, self.t, self.reason = int(path), int(step), float(t), reason
        super().__init__(f"path {self.path}: {reason} at step {self.step}, t = {self.t:.6g}")

    def with_path_offset(self, offset: int) -> StepSizeError:
        """The same error for a solve whose row p is path offset + p of the ensemble."""
        return StepSizeError(offset + self.path, self.step, self.t, self.reason)

    def __reduce__(self) -> tuple:
        """Pickle by the constructor's arguments (the error crosses process boundaries: sdekit.distributed)."""
        return type(self), (self.path, self.step, self.t, self.reason)


class ChainNonFiniteError(FloatingPointError):
    """An MCMC chain's state turned non-finite; `chain` and `step` (1-based; 0 = the initial position) say where."""

    def __init__(self, chain: int, step: int, step_size: float, what: str = "state"):
        self.chain, self.step, self.step_size, self.detail = int(chain), int(step), float(step_size), what
        where = "at its initial position" if self.step == 0 else f"at step {self.step} (warm-up included)"
        super().__init__(
            f"chain {self.chain} became non-finite ({what}) {where}, step size {self.step_size:.6g}; "
            "reduce the step size or use a Metropolis-adjusted sampler, which rejects such proposals")

    def __reduce__(self) -> tuple:
        """Pickle by the constructor's arguments (the error crosses process boundaries: sdekit.distributed)."""
        return type(self), (self.chain, self.step, self.step_size, self.detail)


class NonFiniteProposalError(ChainNonFiniteError):
    """With ``on_nonfinite="raise"``: a chain proposed a point where the energy or its gradient is not finite;
    `chain` and `step` (1-based, warm-up included) say where it first happened."""

    def __init__(self, chain: int, step: int, step_size: float, where: str = ""):
        self.chain, self.step, self.step_size, self.detail = int(chain), int(step), float(step_size), where
        FloatingPointError.__init__(
            self, f"chain {self.chain}{where} proposed a point with a non-finite energy or gradient at step "
            f"{self.step} (warm-up included), step size {self.step_size:.6g} (on_nonfinite='raise'); fix the energy "
            "there, or use on_nonfinite='reject' if U = +inf marks the edge of the support on purpose")
