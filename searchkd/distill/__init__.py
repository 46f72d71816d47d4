"""Distill-and-verify: KD losses, the trainer, and the verification of a search's picks.

``run_distill(result_path, …)`` trains the search's top students and random controls with
knowledge distillation from a trained teacher and writes ``verify.json``/``verify.png``.
Needs only torch, numpy and scipy (matplotlib for the plot); never ray, pymoo or transformers.
"""

from __future__ import annotations

from searchkd.distill.augment import random_crop_flip
from searchkd.distill.losses import FEATURE_LOSSES, ICKD, ickd_loss, kd_loss, sp_loss
from searchkd.distill.report import rank_correlations, verdict
from searchkd.distill.train import Images, TrainConfig, evaluate, train_model
from searchkd.distill.split import load_data
from searchkd.distill.verify import prepare_teacher, run_distill

__all__ = ["run_distill", "prepare_teacher", "train_model", "TrainConfig", "Images", "evaluate", "load_data", "kd_loss", "sp_loss",
           "ickd_loss", "ICKD", "FEATURE_LOSSES", "random_crop_flip", "rank_correlations", "verdict"]
