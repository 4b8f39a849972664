"""Image-shaped data (n, *shape) in sdekit.learn and in the PF-ODE likelihood; the convolutional `ConvScoreNet`.

What each check does, and what a planted bug does to it:

* Losses on (n, 2, 2) equal the same losses on the data flattened to (n, 4), with a net that reads the image as its
  flat vector, on the same generator draws (dsm with each weighting, eps, x0, v, noise-conditional sliced score
  matching), to 1e-12 per example. A per-example sum over axis 1 only (the (n, d) code) gives (n, 2) errors and
  fails; alpha_t or sigma_t broadcast as (n, 1) instead of (n, 1, 1) mixes examples and fails.
* `ScoreModel` on (n, 2, 2) tensors and NumPy arrays: score / eps / x0 / v in time and score(x, alpha, sigma) (on
  and off the schedule) equal the flat model's outputs reshaped, to 1e-12.
* `train_score_model` trains a `ConvScoreNet` on an (N, 1, 4, 4) table and on a callable drawing (n, 1, 4, 4): the
  same seed gives the same losses, the loss falls (last 10 steps below 0.9 of the first 10 on a data law that is
  nearly deterministic; a step that never moves the weights gives 1).
* `ConvScoreNet`: output shape for 8x8 and odd 5x7 images, the same seed gives the same net, starts at 0 (zero output
  layer), the output depends on c (the per-channel embedding) once the output layer is non-zero, and bad input
  names the argument.
* `torch_log_likelihood` on (n, 2, 2) with the exact 4-D mixture score reshaped equals the flat (n, 4) result to
  1e-10 (exact divergence and Hutchinson with the same probes) and, with the exact p_T as its prior, the exact
  log-density to 1e-5 (RK4, 100 steps; a divergence counted over 2 instead of 4 coordinates is off by O(1));
  `bits_per_dim` with a shape counts prod(shape) dimensions.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchdiffeq")

from sdekit.diffusion import DiffusionModel, bits_per_dim  # noqa: E402
from sdekit.diffusion.forward import ForwardSDE  # noqa: E402
from sdekit.diffusion.torch_likelihood import torch_log_likelihood  # noqa: E402
from sdekit.diffusion.torch_mixture import TorchMixtureScore  # noqa: E402
from sdekit.errors import SDEKitError  # noqa: E402
from sdekit.learn import (  # noqa: E402
    ConvScoreNet,
    ScoreMLP,
    ScoreModel,
    dsm_loss,
    eps_loss,
    noise_conditional_ssm_loss,
    train_score_model,
    v_loss,
    x0_loss,
)
from sdekit.targets import GaussianMixture  # noqa: E402

TOL = {"rtol": 1e-12, "atol": 1e-12}
SHAPE = (2, 2)
MIX4 = GaussianMixture([0.4, 0.6], [[-1.5, 0.0, 1.0, 0.5], [1.0, 1.0, -0.5, 0.0]],
                       [np.diag([0.3, 0.5, 0.2, 0.4]), np.eye(4) * 0.25 + 0.05])


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


class ImageView(torch.nn.Module):
    """net(x (n, 2, 2), c) = flat(x (n, 4), c) reshaped: the same function on images as on their flat vectors."""

    def __init__(self, flat: torch.nn.Module) -> None:
        super().__init__()
        self.flat = flat

    def forward(self, x, c):
        return self.flat(x.reshape(x.shape[0], -1), c).reshape(x.shape)


def _flat_net(seed: int = 0) -> ScoreMLP:
    torch.manual_seed(seed)
    return ScoreMLP(4, hidden=16, depth=2, embedding_dim=8).double()


def _models(parametrization: str = "eps", forward: ForwardSDE | None = None) -> tuple[ScoreModel, ScoreModel]:
    fw = forward or ForwardSDE.vp()
    flat = _flat_net()
    return ScoreModel(flat, fw, parametrization), ScoreModel(ImageView(flat), fw, parametrization)


def _images(n: int = 9, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# losses and the wrapper
# --------------------------------------------------------------------------------------------


LOSSES = {
    "dsm-sigma2": lambda m, x, fw, g: dsm_loss(m, x, fw, generator=g, reduction="none"),
    "dsm-likelihood": lambda m, x, fw, g: dsm_loss(m, x, fw, weighting="likelihood", generator=g, reduction="none"),
    "dsm-uniform": lambda m, x, fw, g: dsm_loss(m, x, fw, weighting="uniform", generator=g, reduction="none"),
    "eps": lambda m, x, fw, g: eps_loss(m, x, fw, generator=g, reduction="none"),
    "x0": lambda m, x, fw, g: x0_loss(m, x, fw, generator=g, reduction="none"),
    "v": lambda m, x, fw, g: v_loss(m, x, fw, generator=g, reduction="none"),
    "ssm": lambda m, x, fw, g: noise_conditional_ssm_loss(m, x, fw, n_projections=2, generator=g, reduction="none"),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_on_images_equal_the_flat_losses(name):
    """Per-example losses of (n, 2, 2) data equal those of the flat (n, 4) data on the same draws (1e-12)."""
    fw = ForwardSDE.vp()
    flat_model, image_model = _models("v" if name == "v" else "eps")
    x = _images()
    loss = LOSSES[name]
    flat = loss(flat_model, x.reshape(len(x), -1), fw, torch.Generator().manual_seed(3)).detach()
    image = loss(image_model, x, fw, torch.Generator().manual_seed(3)).detach()
    assert image.shape == (len(x),)
    torch.testing.assert_close(image, flat, **TOL)


def test_loss_gradients_on_images_equal_the_flat_gradients():
    """The mean eps loss backpropagates to the same parameter gradients from images as from flat vectors."""
    fw = ForwardSDE.vp()
    grads = []
    for image in (False, True):
        flat_model, image_model = _models()
        model = image_model if image else flat_model
        x = _images(16)
        eps_loss(model, x if image else x.reshape(16, -1), fw, generator=torch.Generator().manual_seed(4)).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    torch.testing.assert_close(grads[1], grads[0], **TOL)


@pytest.mark.parametrize("kind", ["score", "eps", "x0", "v"])
def test_score_model_on_images_equals_the_flat_model(kind):
    """score / eps / x0 / v at (x, t) and the sampler call model(x, alpha, sigma), on and off the schedule, on
    (n, 2, 2) tensors and NumPy arrays: the flat model's outputs reshaped (1e-12)."""
    flat_model, image_model = _models(kind, ForwardSDE.subvp())  # sub-VP: off-schedule needs the bisection
    x = _images()
    xf = x.reshape(len(x), -1)
    t = torch.linspace(0.1, 0.9, len(x), dtype=torch.float64)
    for method in ("score", "eps", "x0", "v"):
        out = getattr(image_model, method)(x, t)
        assert out.shape == x.shape
        torch.testing.assert_close(out.reshape(xf.shape), getattr(flat_model, method)(xf, t), **TOL)
    alpha, sigma = ForwardSDE.subvp().kernel(0.4)
    for a, s in ((alpha, sigma), (2.0 * alpha, 2.0 * sigma)):
        torch.testing.assert_close(image_model(x, a, s).reshape(xf.shape), flat_model(xf, a, s), **TOL)
    out_np = image_model(x.numpy(), alpha, sigma)
    assert isinstance(out_np, np.ndarray) and out_np.shape == x.shape
    np.testing.assert_allclose(out_np.reshape(len(x), -1), flat_model(xf.numpy(), alpha, sigma), rtol=1e-12)


def test_flat_model_still_refuses_image_batches():
    """A net that states its dim (ScoreMLP) keeps the (n, dim) check in the wrapper and the losses."""
    flat_model, _ = _models()
    with pytest.raises(SDEKitError, match=r"x must have shape \(n, 4\)"):
        flat_model.score(_images(), 0.5)
    with pytest.raises(SDEKitError, match=r"x0 must have shape \(n, 4\)"):
        eps_loss(flat_model, _images(), ForwardSDE.vp())
    with pytest.raises(SDEKitError, match=r"data must have shape \(N, 4\)"):
        train_score_model(flat_model, _images(), ForwardSDE.vp(), steps=1)


# --------------------------------------------------------------------------------------------
# the convolutional network and training on images
# --------------------------------------------------------------------------------------------


def _conv(seed: int = 0, **kw) -> ConvScoreNet:
    torch.manual_seed(seed)
    return ConvScoreNet(1, hidden=8, embedding_dim=8, groups=4, **kw)


def test_conv_score_net_shapes_seed_and_condition():
    """(n, C, H, W) -> (n, C, H, W) for 8x8 and 5x7; output 0 at initialisation (zero last layer); the same seed,
    the same net; with a non-zero last layer the output changes with c (a net that ignored c would not)."""
    net = _conv()
    x = torch.randn(3, 1, 8, 8)
    c = torch.tensor([-3.0, 0.0, 4.0])
    assert net(x, c).shape == x.shape and bool((net(x, c) == 0).all())
    assert net(torch.randn(2, 1, 5, 7), torch.zeros(())).shape == (2, 1, 5, 7)
    torch.nn.init.normal_(net.conv_out.weight)
    other = _conv()
    other.conv_out.load_state_dict(net.conv_out.state_dict())
    torch.testing.assert_close(other(x, c), net(x, c), rtol=0, atol=0)
    shift = (net(x, c) - net(x, c + 1.0)).abs().amax(dim=(1, 2, 3))
    assert bool((shift > 1e-3).all()), shift
    two = ConvScoreNet(3, hidden=8, groups=4)
    assert two(torch.randn(2, 3, 4, 4), torch.zeros(2)).shape == (2, 3, 4, 4)


def test_conv_score_net_bad_input_names_the_argument():
    net = _conv()
    cases = [
        ("x must have shape \\(n, 1, H, W\\)", lambda: net(torch.randn(2, 3, 8, 8), torch.zeros(2))),
        ("x must have shape", lambda: net(torch.randn(2, 64), torch.zeros(2))),
        ("c must have shape \\(2,\\)", lambda: net(torch.randn(2, 1, 8, 8), torch.zeros(3))),
        ("channels", lambda: ConvScoreNet(0)),
        ("hidden must be a multiple of groups", lambda: ConvScoreNet(1, hidden=12, groups=8)),
        ("depth", lambda: ConvScoreNet(1, depth=0)),
        ("embedding_dim must be even", lambda: ConvScoreNet(1, embedding_dim=5)),
    ]
    for match, call in cases:
        with pytest.raises(SDEKitError, match=match):
            call()


def test_training_a_conv_net_on_images():
    """A table (N, 1, 4, 4) and a callable drawing (n, 1, 4, 4): reproducible losses, and the eps loss falls on
    near-constant images (last 10 of 60 steps below 0.9 x the first 10)."""
    fw = ForwardSDE.vp()
    pattern = torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4)
    table = pattern + 0.05 * torch.randn(256, 1, 4, 4, generator=torch.Generator().manual_seed(0))

    def draw(n, gen):
        return pattern + 0.05 * torch.randn(n, 1, 4, 4, generator=gen)

    runs = []
    for data in (table, table, draw):
        model = ScoreModel(_conv(), fw, parametrization="eps")
        runs.append(train_score_model(model, data, fw, loss="eps", steps=60, batch_size=32, lr=3e-3, seed=0).losses)
    np.testing.assert_array_equal(runs[0], runs[1])
    for losses in (runs[0], runs[2]):
        assert np.all(np.isfinite(losses))
        assert losses[-10:].mean() < 0.9 * losses[:10].mean(), (losses[:10].mean(), losses[-10:].mean())
    assert model.score(pattern.double(), 0.5).shape == (1, 1, 4, 4)


# --------------------------------------------------------------------------------------------
# likelihoods
# --------------------------------------------------------------------------------------------


def test_likelihood_of_images_equals_the_flat_likelihood():
    """torch_log_likelihood on (n, 2, 2) with the exact mixture score reshaped = the flat (n, 4) result to 1e-10
    (exact divergence and Hutchinson) and, with the exact p_T as the prior, the exact log-density to 1e-5; x_T comes
    back in the images' shape."""
    fw = ForwardSDE.vp()
    exact_score = TorchMixtureScore(MIX4, fw)
    model = DiffusionModel.exact_mixture(fw, MIX4)
    xf = torch.as_tensor(model.sample_marginal(12, fw.eps, seed=2))
    x = xf.reshape(12, *SHAPE)
    truth = model.marginal(fw.eps).log_prob(xf.numpy())

    def image_score(y, t):
        return exact_score.score_t(y.reshape(y.shape[0], -1), t).reshape(y.shape)

    def image_prior(y):  # the exact p_T (an image batch (n, 2, 2) -> (n,))
        return exact_score.log_prob_t(y.reshape(y.shape[0], -1), fw.T)

    with torch.no_grad():
        flat = torch_log_likelihood(exact_score.score_t, fw, xf, steps=100)
        image = torch_log_likelihood(image_score, fw, x, steps=100)
        image_exact_prior = torch_log_likelihood(image_score, fw, x, steps=100, prior_log_prob=image_prior)
        hutch_flat = torch_log_likelihood(exact_score.score_t, fw, xf, steps=20, divergence="hutchinson", probes=3)
        hutch_image = torch_log_likelihood(image_score, fw, x, steps=20, divergence="hutchinson", probes=3)
    assert image.x_T.shape == x.shape and image.log_prob.shape == (12,)
    torch.testing.assert_close(image.log_prob, flat.log_prob, rtol=0, atol=1e-10)
    torch.testing.assert_close(image.x_T.reshape(12, -1), flat.x_T, rtol=0, atol=1e-10)
    torch.testing.assert_close(hutch_image.log_prob, hutch_flat.log_prob, rtol=0, atol=1e-10)
    torch.testing.assert_close(hutch_image.stderr, hutch_flat.stderr, rtol=0, atol=1e-10)
    np.testing.assert_allclose(image_exact_prior.log_prob.numpy(), truth, rtol=0, atol=1e-5)


def test_likelihood_names_a_score_of_the_wrong_shape():
    """A score that returns flat vectors for image batches is refused with both shapes named."""
    with pytest.raises(SDEKitError, match=r"score returned shape \(3, 4\) for a batch x of shape \(3, 2, 2\)"):
        torch_log_likelihood(lambda y, t: -y.reshape(len(y), -1), ForwardSDE.vp(), _images(3), steps=2)


def test_bits_per_dim_counts_every_dimension_of_a_shape():
    """bits_per_dim(lp, (2, 2)) = bits_per_dim(lp, 4); (1, 8, 8) counts 64; a bad shape names dim."""
    lp = np.array([-10.0, -3.5])
    np.testing.assert_array_equal(bits_per_dim(lp, SHAPE), bits_per_dim(lp, 4))
    np.testing.assert_allclose(bits_per_dim(lp, (1, 8, 8), data_scale=1.0), -lp / (64 * np.log(2.0)))
    for bad in ((2, 0), (), (2.0, 2), [True, 2]):
        with pytest.raises(SDEKitError, match="dim must be an integer >= 1 or a shape"):
            bits_per_dim(lp, bad)
