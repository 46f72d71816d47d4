"""Adaptive Computation Modules (Wójcik et al., AAAI 2025) for BERT-family encoders, one room.

From the bottom up: ``settings.py`` (the defaults chosen by measurement, free of torch),
``model.py`` (the ACM block, its gate and the conversion of a model's FFNs), ``steps.py`` (the resumable step loop and the seeds every stage shares), ``stage3.py`` (the
end-to-end stage and its losses), ``task.py`` (a labelled text task and its classifier),
``train.py`` (stages 1 and 2, calibration), ``io.py`` (saving and loading a converted folder)
and ``run.py`` (``searchkd acm``: every stage, per budget, measured). A lower module never
imports a higher one; this package imports none of them, so that ``import searchkd.supernets.acm``
stays free of torch.
"""
