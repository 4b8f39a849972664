"""The flow-matching example end to end in its quick mode (examples/flow_matching.py, `QUICK`).

Checks, each able to fail:

* 2-D mixture: every sampler on the exact velocity passes the exact-law battery (N = 2000 here), and the flow-matching
  loss of the (briefly) trained MLP approaches its minimum (the exact velocity's loss): the excess over it of the
  last 10 % of steps is below half that of the first 10 %; an untrained model does not move;
* digits: every flow sampler gives finite (n, 1, 8, 8) digits whose Fréchet distance to the held-out digits is below
  0.6 of that of N(0, I) noise on both feature maps (measured 0.36 / 0.16 after the quick run's 40 training steps);
  the planted bug -- the velocity's sign flipped -- gives digits as far as noise or farther (same threshold fails);
* the results (md, json, the plots and a digit grid per sampler) are written.
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flow_matching.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("flow_matching_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    torch.set_num_threads(1)
    return mod


@pytest.fixture(scope="module")
def quick(example, tmp_path_factory):
    cache, out = tmp_path_factory.mktemp("flow-cache"), tmp_path_factory.mktemp("flow-out")
    return example.run(example.QUICK, cache_dir=cache, out_dir=out, log=lambda s: None), out


def test_mixture_exact_velocity_passes_and_training_lowers_the_loss(quick):
    res, _ = quick
    mix = res["mixture"]
    exact_rows = [r for r in mix["rows"] if r["velocity"] == "exact"]
    assert len(exact_rows) == 4 and all(r["passed"] for r in exact_rows), exact_rows
    losses = mix["losses"]
    k = len(losses) // 10
    first, last, minimum = losses[:k].mean(), losses[-k:].mean(), mix["loss"]["minimum"]
    assert last - minimum < 0.5 * (first - minimum), (first, last, minimum)
    assert mix["loss"]["learned"] >= minimum - 6 * mix["loss"]["excess_se"]


def test_digit_samplers_give_digits_not_noise(example, quick):
    res, _ = quick
    dig = res["digits"]
    noise = dig["reference"][example.dg.NOISE]
    assert len(dig["rows"]) == 4
    for r in dig["rows"]:
        assert r.x.shape == (example.QUICK.n_samples, 1, 8, 8) and np.all(np.isfinite(r.x))
        for f in ("pca16", "mlp64"):
            assert r.fd[f] < 0.6 * noise[f], (r.sampler, r.fd, noise)


def test_flipped_velocity_gives_noise(example, quick):
    """Planted bug: the trained digits velocity with its sign flipped, sampled by Euler at 10 NFE."""
    res, _ = quick
    dg, dig = example.dg, res["digits"]
    model, judge = dig["model"], dig["judge"]
    with torch.no_grad():
        x = example.flow_sample(lambda v, t: -model(v, t), dig["z"], method="euler", steps=10).x.double().numpy()
    fd = judge.fd(dg.to_pixels(x))
    noise = res["digits"]["reference"][dg.NOISE]
    assert all(fd[f] >= 0.6 * noise[f] for f in ("pca16", "mlp64")), (fd, noise)


def test_results_are_written(quick):
    _, out = quick
    for name in ("results.md", "results.json", "mixture_samples.png", "training.png", "digits_fd_vs_nfe.png",
                 "digits_flow_euler.png", "digits_flow_dpm_solver_2m.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "results.json").read_text())
    assert len(data["mixture"]["rows"]) == 8 and len(data["digits"]["rows"]) == 4
