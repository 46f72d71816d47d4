"""ACM settings whose defaults are chosen by measurement, one line each (flip a default here and
the config, the run and the CLI follow), and the value each setting had before it was recorded,
so that checkpoints and converted folders saved without it still resume. Free of torch: the CLI
reads it to build its flags.
"""

from __future__ import annotations

__all__ = ["STAGE2_LOSSES", "STAGE2_LOSS", "CALIBRATE_BEFORE_STAGE3", "ROUTINGS", "ROUTING", "LEGACY",
           "check_stage2_loss", "check_routing"]

#: stage 2's gate loss: ``nll`` (the authors': NLL of the hard Gumbel-softmax sample) or ``ce``
#: (cross-entropy of the gate's logits); :mod:`searchkd.supernets.acm.train`. ``ce`` by
#: measurement: on 2,048 cached tokens neither stage trains on (MiniLM-L6, seed 0, the same
#: stage 1), its gates match their labels on .63/.63/.62/.58/.71/.69 of tokens per layer, the
#: NLL's on .33/.34/.50/.30/.63/.74 (docs/benchmarks.md, "Stage-2 loss")
STAGE2_LOSSES = ("nll", "ce")
STAGE2_LOSS = "ce"
#: shift the gates' logits onto each budget before its stage 3 too (not only after it), so that
#: stage 3 trains under the budget's compute; run.py. Off: measured on the embedded text's
#: held-out rows (not the task), MiniLM-L6, dense model tuned 200 task steps, ``expected``
#: routing, the same stages 1-2, seeds 0-1, it raises the mean sentence-embedding cosine over
#: budgets .25/.5/.75 (.815 vs .786, .829 vs .766) but brings back the pile-up at 0.5: 11 of
#: 12 layers send over 80 % of their tokens to one k, against 4 of 12 without (stage 3 learns
#: the argmax-shifted gates' k = 2); issue 25's adaptivity bar rules it out (docs/benchmarks.md,
#: "Calibration before stage 3")
CALIBRATE_BEFORE_STAGE3 = False
#: how a gate picks k at inference (:meth:`searchkd.supernets.acm.model.ACM.choose`): ``argmax``
#: of its logits, the calibration shift folded into them; or ``expected``: its expected k under
#: the softmax of its logits plus one calibrated offset, rounded, which keeps the tokens' order.
#: ``expected`` by measurement on the embedded text's held-out rows (not the task): MiniLM-L6,
#: seeds 0 and 1, the same trained ACMs, sentence-embedding cosine .647/.855/.848 and
#: .652/.854/.790 at budgets .25/.5/.75 against .579/.849/.845 and .538/.844/.790 with argmax
ROUTINGS = ("argmax", "expected")
ROUTING = "expected"

#: what a stage checkpoint or a converted folder saved before a setting existed did: read as this
#: value where the setting is missing (never the current default, which may change)
LEGACY = {"convert": "ffn", "stage2_loss": "nll", "calibrate_before_stage3": False, "routing": "argmax"}


def check_stage2_loss(value: object) -> None:
    """One line for a stage-2 loss that is not one of :data:`STAGE2_LOSSES`."""
    from searchkd.errors import SearchKDError

    if value not in STAGE2_LOSSES:
        raise SearchKDError(f"--stage2-loss must be one of {', '.join(STAGE2_LOSSES)}, got {value!r}")


def check_routing(value: object) -> None:
    """One line for a routing that is not one of :data:`ROUTINGS`."""
    from searchkd.errors import SearchKDError

    if value not in ROUTINGS:
        raise SearchKDError(f"--routing must be one of {', '.join(ROUTINGS)}, got {value!r}")
