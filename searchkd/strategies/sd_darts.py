"""SD-DARTS: Zhu, Li, Liu & Wang, "Improving Differentiable Architecture Search via
Self-Distillation" (2023, arXiv 2302.05629).

DARTS (:mod:`searchkd.strategies.darts`) whose supernet is distilled from its own previous
steps: the K most recent supernets (weights and α, kept as state dicts on the training device,
without optimizer state) are *voting teachers*; their output probabilities at temperature T are
aggregated by :func:`vote`, and the network-weight loss becomes

    CE(supernet(x), y) + λ · T² · KL(vote ‖ softmax(supernet(x) / T)).

The paper's claim: a flatter supernet loss landscape (a smaller dominant Hessian eigenvalue of
the validation loss w.r.t. α) and a smaller gap between the supernet and the derived cell.

**Where this departs from or fills in the paper.** Only the paper's abstract could be consulted
here; the number of teachers, the voting rule and the loss weights below are this
implementation's choices, kept as options: K = ``sd_teachers`` (default 2, the two previous
steps), T = ``sd_temperature`` (default 3) and λ = ``sd_weight`` (default 1), the settings of
self-distillation from the last mini-batch (Shen et al., CVPR 2022) that SD-DARTS's
step-to-step distillation resembles. The term acts on the weight step only; α's step is plain
DARTS. A snapshot is taken after every ``sd_interval`` weight steps (default 1: the teachers are
the supernets of the K previous steps, the paper's "previous steps"; 0: one snapshot at the end
of each epoch, so the teachers are the supernets of the K previous epochs). With one-step-old
teachers the vote is very close to the supernet's own output and the term's gradient is small;
``benchmarks/darts_nb201.py`` measures both spacings.

**Voting** (``sd_voting``): ``soft`` (the default) averages the teachers' softened
probabilities, so every teacher's whole distribution counts, which is the paper's "output
probabilities aggregated"; ``hard`` takes the majority class of the teachers' argmaxes per image
(ties: the class with the larger mean probability) and averages the distributions of the
teachers that voted for it, so a dissenting teacher is outvoted rather than averaged in. Soft is
the default because with the default K = 2 a hard vote is a tie whenever the two teachers
disagree, and because averaging keeps T meaningful for every teacher.
"""

from __future__ import annotations


from searchkd.registry import STRATEGIES
from searchkd.strategies._darts_base import vote
from searchkd.strategies.darts import DartsSearch

__all__ = ["SDDartsSearch", "vote"]


class SDDartsSearch(DartsSearch):
    """SD-DARTS (Zhu et al. 2023): DARTS distilled from a vote of its K previous supernets."""

    name = "sd-darts"
    option_defaults = {"sd_weight": 1.0}


STRATEGIES.register("sd-darts", SDDartsSearch, description="SD-DARTS (Zhu et al. 2023): DARTS self-distilled from a vote "
                    "of its previous supernets; --budget counts epochs")
