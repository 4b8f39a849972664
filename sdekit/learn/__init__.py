"""Learned scores in torch: networks, the `ScoreModel` wrapper (score / eps / x0 / v), training losses and a training
loop; energy-based models learned by contrastive divergence and NCE (`train_ebm_cd`, `train_ebm_nce`).
This package imports torch at its top; torch is optional, so nothing else in sdekit imports it."""

from sdekit.learn.ebm_cd import cd_loss, train_ebm_cd
from sdekit.learn.ebm_loop import EBMTrainingResult
from sdekit.learn.ebm_nce import nce_loss, train_ebm_nce
from sdekit.learn.ebm_numpy import energy_and_grad_numpy
from sdekit.learn.ebm_reference import GaussianReference, UniformBoxReference
from sdekit.learn.ebm_sampling import LangevinSamples, langevin_chains
from sdekit.learn.flow_matching import VelocityModel, flow_matching_loss, train_flow_model
from sdekit.learn.indi_loss import InDIDenoiser, indi_loss, train_indi
from sdekit.learn.losses import (
    dsm_loss,
    eps_loss,
    noise_conditional_ssm_loss,
    sliced_score_matching_loss,
    v_loss,
    x0_loss,
)
from sdekit.learn.networks import ConvScoreNet, FourierEmbedding, ScoreMLP
from sdekit.learn.train import TrainingResult, train_score_model
from sdekit.learn.wrappers import ScoreModel, convert_prediction, log_snr, time_from_logsnr

__all__ = [
    "ConvScoreNet",
    "EBMTrainingResult",
    "FourierEmbedding",
    "GaussianReference",
    "InDIDenoiser",
    "LangevinSamples",
    "ScoreMLP",
    "ScoreModel",
    "TrainingResult",
    "UniformBoxReference",
    "VelocityModel",
    "cd_loss",
    "convert_prediction",
    "dsm_loss",
    "energy_and_grad_numpy",
    "eps_loss",
    "flow_matching_loss",
    "indi_loss",
    "langevin_chains",
    "log_snr",
    "nce_loss",
    "noise_conditional_ssm_loss",
    "sliced_score_matching_loss",
    "time_from_logsnr",
    "train_ebm_cd",
    "train_ebm_nce",
    "train_flow_model",
    "train_indi",
    "train_score_model",
    "v_loss",
    "x0_loss",
]
