"""What a search uses when the user names nothing: its proxy and its data. Below the API, so that
the sweep and the CLI apply the same defaults as :func:`searchkd.api.search` without importing it."""

from __future__ import annotations

__all__ = ["default_proxy", "default_data", "default_batch_size", "is_text_space"]


def default_proxy(space: str, strategy: str) -> str:
    """The proxy a search uses when it names none: the strategy's, the space's, or ``kd``
    (on distillation ground truth it ranks students above size, and DisWOT far below both:
    docs/proxies.md; ``diswot`` stays one flag away)."""
    from searchkd.registry import STRATEGIES

    import searchkd.strategies  # noqa: F401  (registration)

    cls = STRATEGIES.get(strategy) if strategy in STRATEGIES else None
    if getattr(cls, "default_proxy", None):
        return cls.default_proxy
    return "superlm" if is_text_space(space) else "kd"


def default_data(space: str, strategy: str | None = None) -> str:
    """The data a space is scored on when none is named: ``embedded`` images, or ``embedded-text``;
    for ``darts``/``sd-darts`` the shared CIFAR-10 training file (they train on their data)."""
    if strategy in ("darts", "sd-darts"):
        from searchkd.strategies.darts import default_search_data

        return default_search_data()
    return "embedded-text" if is_text_space(space) else "embedded"


def default_batch_size(space: str) -> int:
    """``--batch-size`` when none is named: 64 images a proxy batch; for ``bert-*`` spaces 16,
    the SuperLM's training batch (300 sandwich steps of 16 rows took 36 minutes of a loaded
    2-core CPU, ``docs/benchmarks.md``; of 64 rows each step costs about 4× that)."""
    return 16 if is_text_space(space) else 64


def is_text_space(space: str) -> bool:
    from searchkd.registry import SPACES

    import searchkd.spaces  # noqa: F401  (registration)

    return isinstance(space, str) and space in SPACES and getattr(SPACES.get(space), "modality", "image") == "text"
