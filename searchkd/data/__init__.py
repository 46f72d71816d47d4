"""Labelled image data for scoring and distillation.

``load_images(spec)`` reads one of the ``--data`` forms of the CONTRACT and returns an
:class:`ImageSet` (uint8 N×32×32×3 images and int64 labels, all in memory);
``ImageSet.batch(batch_size, seed)`` draws a seeded, class-balanced-where-possible batch
normalised with the CIFAR statistics NAS-Bench-201 uses.

``load_text(spec, tokenizer)`` reads the text forms (``embedded-text``, ``text:PATH``) into a
:class:`TextSet` of fixed-length token rows for BERT-family teachers (see :mod:`searchkd.data.text`).
"""

from __future__ import annotations

from searchkd.data.images import CIFAR_MEAN, CIFAR_STD, ImageSet, load_images, normalize
from searchkd.data.text import TEXT_DATA_FORMS, TextSet, is_text_data, load_text

__all__ = ["ImageSet", "load_images", "normalize", "CIFAR_MEAN", "CIFAR_STD"]
__all__ += ["TextSet", "load_text", "is_text_data", "TEXT_DATA_FORMS"]
