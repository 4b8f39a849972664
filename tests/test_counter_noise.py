"""Counter-based normals: the definition, Numba = torch to the bit, the law of the numbers, the quantile's accuracy.

N(seed, stream, path, i) = Phi^{-1}((2 (splitmix64(key + i GOLDEN) >> 12) + 1) 2^-53) (sdekit.noise.counter).
* Definition: the uniforms recomputed with Python integers (mod 2^64) give the same normals; any block of a request
  (offsets, draw blocks, serial or parallel kernel) equals the slice of a larger one.
* Numba = torch: the pure-torch implementation (what runs on a GPU) equals the Numba generator bit for bit in
  float64, offsets near 2^62, 2^63 and 2^64 included, and the quantile equals on a grid through all three branches.
  A pure-Python evaluation of the quantile (IEEE double, no FMA) equals the Numba one: nothing was contracted.
* Law: 2^22 draws, eight checks at 1.25e-7 each (1e-6 for the test): KS against N(0, 1), mean, variance, skewness,
  kurtosis, counts beyond 3, 4 and 5 (binomial), correlation of neighbouring paths, draws and streams.
* Accuracy: max relative error against scipy.special.ndtri <= 1.5e-15 for q from 2^-53 to 1 - 2^-53 (measured
  1.03e-15, 7 ulps, in the central branch).
* Planted bugs: a coefficient typo fails the law and the accuracy check; a far-tail coefficient off in the third
  digit (never reached by 2^22 draws) fails the accuracy check; an arithmetic instead of a logical right shift in
  the torch integer code breaks the bit equality.
"""

import math

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as st

from sdekit.errors import SDEKitError
from sdekit.noise import counter
from sdekit.noise.counter import counter_normals
from sdekit.noise.inverse_normal import (
    PPND16_A,
    PPND16_B,
    PPND16_C,
    PPND16_D,
    PPND16_E,
    PPND16_F,
    exact_log,
    exact_sqrt,
    horner7,
    normal_quantile,
)
from sdekit.noise.streams import GOLDEN, MIX1, MIX2
from sdekit.validate.budget import BUDGET
from sdekit.validate.onesample import ks_test

torch = pytest.importorskip("torch")
from sdekit.backends.torch import counter_noise as cn  # noqa: E402
from sdekit.backends.torch.counter_noise import torch_counter_normals, torch_counter_normals_like  # noqa: E402

torch.set_num_threads(1)
M64 = (1 << 64) - 1
CHECKS = 8
ALPHA_EACH = 1e-6 / CHECKS
Z_CRIT = st.norm.isf(ALPHA_EACH / 2)  # 5.29
ACCURACY = 1.5e-15
CPU = torch.device("cpu")


def py_splitmix64(z: int) -> int:
    z = (z + GOLDEN) & M64
    z = ((z ^ (z >> 30)) * MIX1) & M64
    z = ((z ^ (z >> 27)) * MIX2) & M64
    return z ^ (z >> 31)


def py_uniform(seed: int, stream: int, path: int, i: int) -> float:
    key = py_splitmix64(py_splitmix64(py_splitmix64(seed) ^ stream) ^ path)
    word = py_splitmix64((key + i * GOLDEN) & M64)
    return (2 * (word >> 12) + 1) * 2.0**-53


def py_ppnd16(q: float) -> float:
    """AS 241 in Python floats from the module's tables and Python versions of its log and sqrt."""
    qc = q - 0.5
    if abs(qc) <= 0.425:
        r = 0.180625 - qc * qc
        return qc * horner7.py_func(PPND16_A, r) / horner7.py_func(PPND16_B, r)
    r = exact_sqrt.py_func(-exact_log.py_func(q if qc < 0.0 else 1.0 - q))
    if r <= 5.0:
        z = horner7.py_func(PPND16_C, r - 1.6) / horner7.py_func(PPND16_D, r - 1.6)
    else:
        z = horner7.py_func(PPND16_E, r - 5.0) / horner7.py_func(PPND16_F, r - 5.0)
    return -z if qc < 0.0 else z


def q_grid(n: int = 100_000) -> np.ndarray:
    """q through every branch: log-spaced from 2^-53 to 0.4999, uniform in between, mirrored (1 - q exact)."""
    lo = np.concatenate([[2.0**-53, 3 * 2.0**-53], np.logspace(-15.9, math.log10(0.4999), n),
                         np.linspace(1e-6, 0.4999, n)])
    return np.concatenate([lo, 1.0 - lo])


def accuracy(values: np.ndarray, q: np.ndarray) -> float:
    ref = sp.ndtri(q)
    return float(np.max(np.abs(values - ref) / np.abs(ref)))


def law_failures(z: np.ndarray, z_other_stream: np.ndarray | None = None) -> list[str]:
    """The names of the law checks that fail at ALPHA_EACH on the (paths, draws) block z (each spends its alpha on
    sdekit's false-alarm ledger)."""
    x = z.ravel()
    n = x.size
    bad = []
    if not ks_test(x, st.norm(), alpha=ALPHA_EACH).passed:
        bad.append("KS")
    for _ in range(CHECKS - 1):
        BUDGET.spend(ALPHA_EACH, "counter_noise_law")
    c = x - x.mean()
    m2, m3, m4 = (c**2).mean(), (c**3).mean(), (c**4).mean()
    for name, val, se in (("mean", x.mean(), 1.0 / math.sqrt(n)), ("variance", m2 - 1.0, math.sqrt(2.0 / n)),
                          ("skewness", m3 / m2**1.5, math.sqrt(6.0 / n)),
                          ("kurtosis", m4 / m2**2 - 3.0, math.sqrt(24.0 / n))):
        if abs(val / se) > Z_CRIT:
            bad.append(name)
    counts = [int(np.sum(np.abs(x) > k)) for k in (3.0, 4.0, 5.0)]
    tails = [2.0 * st.norm.sf(k) for k in (3.0, 4.0, 5.0)]
    if min(2.0 * min(st.binom.cdf(k, n, p), st.binom.sf(k - 1, n, p)) for k, p in zip(counts, tails)) <= ALPHA_EACH:
        bad.append("tails")
    pairs = [(z[:-1].ravel(), z[1:].ravel()), (z[:, :-1].ravel(), z[:, 1:].ravel())]
    if z_other_stream is not None:
        pairs.append((x, z_other_stream.ravel()))
    if max(abs(np.corrcoef(a, b)[0, 1]) * math.sqrt(a.size) for a, b in pairs) > Z_CRIT:
        bad.append("correlation")
    return bad


def test_normals_follow_the_definition():
    cases = [(0, 0, 0, 0), (7, 3, 2**62 - 1, 2**62 + 5), (2**64 - 1, 2**63, 2**64 - 3, 2**64 - 4)]
    for seed, stream, path, draw in cases:
        z = counter_normals(seed, 3, 4, path_offset=path, stream=stream, draw_offset=draw)
        q = np.array([[py_uniform(seed, stream, path + p, draw + j) for j in range(4)] for p in range(3)])
        assert np.array_equal(z, normal_quantile(q)), (seed, stream, path, draw)


def test_any_block_is_the_slice_of_a_larger_request():
    m = 2 * counter.DRAW_BLOCK + 37  # several draw blocks per path
    big = counter_normals(11, 9, m, stream=4)  # parallel kernel (9 m > PARALLEL_FROM)
    part = counter_normals(11, 3, 70, path_offset=5, draw_offset=counter.DRAW_BLOCK - 20, stream=4)  # serial kernel
    assert big.size >= counter.PARALLEL_FROM > part.size
    assert np.array_equal(part, big[5:8, counter.DRAW_BLOCK - 20:counter.DRAW_BLOCK + 50])
    assert not np.array_equal(big, counter_normals(11, 9, m, stream=5))
    rows = counter_normals(11, 6000, 3)  # parallel, several whole rows per work item
    assert rows.size >= counter.PARALLEL_FROM and counter.DRAW_BLOCK // 3 == 682
    assert np.array_equal(counter_normals(11, 7, 2, path_offset=2040, draw_offset=1), rows[2040:2047, 1:])
    assert counter_normals(1, 0, 5).shape == (0, 5) and counter_normals(1, 5, 0).shape == (5, 0)


def test_quantile_numba_equals_python_and_torch_to_the_bit():
    q = q_grid(2_000)
    numba_z = normal_quantile(q)
    assert np.array_equal(numba_z, [py_ppnd16(v) for v in q])
    assert torch.equal(cn.ppnd16_torch(torch.from_numpy(q)), torch.from_numpy(numba_z))
    qq = q_grid()
    assert torch.equal(cn.ppnd16_torch(torch.from_numpy(qq)), torch.from_numpy(normal_quantile(qq)))


OFFSET_CASES = [(0, 0, 0, 0), (123, 5, 2**62 - 7, 2**62 + 11), (2**64 - 1, 2**63 + 1, 2**63 - 100, 2**63 - 1000),
                (99, 2, 2**64 - 40, 2**64 - 3000)]


@pytest.mark.parametrize("seed,stream,path_offset,draw_offset", OFFSET_CASES)
def test_torch_implementation_equals_numba_to_the_bit(seed, stream, path_offset, draw_offset):
    ref = torch.from_numpy(counter_normals(seed, 40, 2500, path_offset=path_offset, stream=stream,
                                           draw_offset=draw_offset))
    got = cn.device_counter_normals(seed, 40, 2500, path_offset, stream, draw_offset, torch.float64, CPU)
    assert ref.abs().max() > 4.0  # the tail branches are in the comparison
    assert torch.equal(got, ref)
    public = torch_counter_normals(seed, 40, 2500, path_offset=path_offset, stream=stream, draw_offset=draw_offset)
    assert torch.equal(public, ref)
    f32 = torch_counter_normals(seed, 40, 2500, path_offset=path_offset, stream=stream, draw_offset=draw_offset,
                                dtype=torch.float32)
    assert f32.dtype == torch.float32 and torch.equal(f32, ref.to(torch.float32))
    assert torch.equal(cn.device_counter_normals(seed, 40, 2500, path_offset, stream, draw_offset, torch.float32,
                                                 CPU), f32)


def test_blocks_of_the_device_path_equal_numba(monkeypatch):
    monkeypatch.setattr(cn, "uses_numba", lambda device: False)  # the torch operations, here on the CPU
    blocks = cn.CounterNormals(3, 30, 70, stream=2, path_offset=2**63 + 5, device="cpu")
    for offset in (0, 70, 2**62 + 1, 2**64 - 70):
        ref = counter_normals(3, 30, 70, stream=2, path_offset=2**63 + 5, draw_offset=offset)
        assert torch.equal(blocks.block(offset), torch.from_numpy(ref))
    with pytest.raises(SDEKitError, match="draw_offset must be an integer in"):
        blocks.block(2**64 - 69)


def test_planted_logical_shift_bug_breaks_bit_equality(monkeypatch):
    ref = torch.from_numpy(counter_normals(5, 20, 50))
    monkeypatch.setattr(cn, "_lsr", lambda z, k: z >> k)  # arithmetic shift: sign bits leak into the word
    assert not torch.equal(cn.device_counter_normals(5, 20, 50, 0, 0, 0, torch.float64, CPU), ref)


def test_normals_pass_the_law_checks():
    z = counter_normals(2024, 2048, 2048)
    assert law_failures(z, counter_normals(2024, 2048, 2048, stream=1)) == []


def test_quantile_accuracy_against_ndtri():
    q = q_grid()
    assert accuracy(normal_quantile(q), q) <= ACCURACY
    assert accuracy(cn.ppnd16_torch(torch.from_numpy(q)).numpy(), q) <= ACCURACY


def test_planted_coefficient_typo_fails_law_and_accuracy(monkeypatch):
    typo = PPND16_A[:3] + (1.3731693765509461125e+3,) + PPND16_A[4:]  # e+4 written e+3
    monkeypatch.setattr(cn, "PPND16_A", typo)
    z = cn.device_counter_normals(2024, 1024, 1024, 0, 0, 0, torch.float64, CPU).numpy()
    assert "KS" in law_failures(z)
    q = q_grid(20_000)
    assert accuracy(cn.ppnd16_torch(torch.from_numpy(q)).numpy(), q) > ACCURACY


def test_planted_far_tail_bug_fails_accuracy(monkeypatch):
    monkeypatch.setattr(cn, "PPND16_E", (6.66790464350110377720,) + PPND16_E[1:])  # third digit wrong
    q = q_grid(20_000)
    assert accuracy(cn.ppnd16_torch(torch.from_numpy(q)).numpy(), q) > ACCURACY


def test_normals_like_an_image_batch():
    like = torch.zeros(6, 3, 4, 5, dtype=torch.float32)
    z = torch_counter_normals_like(9, like, stream=7, draw_offset=100, path_offset=3)
    assert z.shape == like.shape and z.dtype == torch.float32
    flat = counter_normals(9, 6, 60, path_offset=3, stream=7, draw_offset=100)
    assert torch.equal(z.reshape(6, 60), torch.from_numpy(flat).to(torch.float32))
    rows = torch_counter_normals_like(9, like[:2], stream=7, draw_offset=100, path_offset=4)
    assert torch.equal(rows, z[1:3])  # a path's numbers do not depend on the batch it is drawn in


@pytest.mark.parametrize("kwargs,match", [
    ({"seed": -1}, "seed must be an integer in"), ({"seed": 2**64}, "seed must be an integer in"),
    ({"seed": 1.5}, "seed must be an integer in"), ({"n_paths": -2}, "n_paths must be an integer >= 0"),
    ({"n_draws": True}, "n_draws must be an integer >= 0"), ({"stream": -1}, "stream must be an integer in"),
    ({"path_offset": 2**64 - 2}, "path_offset \\+ n_paths must be at most 2\\*\\*64"),
    ({"draw_offset": 2**64 - 1}, "draw_offset \\+ n_draws must be at most 2\\*\\*64"),
])
def test_bad_arguments_are_named(kwargs, match):
    args = {"seed": 1, "n_paths": 3, "n_draws": 2} | kwargs
    seed, n, m = args.pop("seed"), args.pop("n_paths"), args.pop("n_draws")
    with pytest.raises(SDEKitError, match=match):
        counter_normals(seed, n, m, **args)
    with pytest.raises(SDEKitError, match=match):
        torch_counter_normals(seed, n, m, **args)


def test_bad_torch_arguments_are_named():
    with pytest.raises(SDEKitError, match="dtype must be torch.float64 or torch.float32"):
        torch_counter_normals(1, 2, 2, dtype=torch.float16)
    with pytest.raises(SDEKitError, match="device must be a torch device"):
        torch_counter_normals(1, 2, 2, device="nowhere")
    with pytest.raises(SDEKitError, match="like must be a tensor of shape"):
        torch_counter_normals_like(1, np.zeros((2, 2)), stream=0)
    with pytest.raises(SDEKitError, match="like must be a float64 or float32 tensor"):
        torch_counter_normals_like(1, torch.zeros(2, 2, dtype=torch.int64), stream=0)
    with pytest.raises(SDEKitError, match="q must lie strictly between 0 and 1"):
        normal_quantile(np.array([0.5, 1.0]))
