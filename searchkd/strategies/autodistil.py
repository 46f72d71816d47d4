"""AutoDistil's search: Xu et al., "AutoDistil: Few-shot Task-agnostic Neural Architecture
Search for Distilling Large Language Models" (2022).

After one weight-sharing SuperLM per sub-space is trained by self-attention relation
distillation from the teacher (:mod:`searchkd.supernets.superlm`), AutoDistil evaluates
the subnets of the sub-space inside it, without retraining, and takes the best by held-out
distillation loss under the user's size constraint. Here the SuperLM is the ``superlm``
score source (:mod:`searchkd.evaluate.text`) and this strategy enumerates the sub-space:
every subnet once, in a seeded random order, so a budget of 256 scores all of a sub-space
and a smaller one a uniform sample. It is random search without replacement with the SuperLM
as its default proxy; evolution and NSGA-II search the same score source.
"""

from __future__ import annotations

from searchkd.registry import STRATEGIES
from searchkd.strategies.random import RandomSearch

__all__ = ["AutoDistilSearch"]


class AutoDistilSearch(RandomSearch):
    """AutoDistil (Xu et al. 2022): score the sub-space's subnets inside the trained SuperLM."""

    name = "autodistil"
    default_ask_size = 32  # one forward pass of the held-out text per batch of subnets
    #: the score source used when the search names no proxy
    default_proxy = "superlm"


STRATEGIES.register("autodistil", AutoDistilSearch,
                    description="AutoDistil (Xu et al. 2022): every subnet scored inside a trained SuperLM, no retraining")
