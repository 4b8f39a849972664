"""No script in benchmarks/ may shadow a package sdekit or its tests import: the scripts and several tests put
benchmarks/ on sys.path, and a `benchmarks/distributed.py` made `import distributed` load the benchmark instead of
dask's (19 errors in a CI run)."""

from pathlib import Path

PACKAGES = {"arviz", "dask", "diffusers", "distributed", "hypothesis", "matplotlib", "numba", "numpy", "pytest",
            "scipy", "sdekit", "sklearn", "torch", "torchdiffeq", "torchsde", "tqdm"}


def test_no_benchmark_script_shadows_a_dependency():
    names = {p.stem for p in (Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py")}
    assert names, "benchmarks/ has no scripts"
    assert not names & PACKAGES, f"benchmarks/ shadows {sorted(names & PACKAGES)}"
