from __future__ import annotations

import pytest

from searchkd.errors import SearchKDError
from searchkd.registry import Registry


def test_duplicate_and_unknown_names():
    reg: Registry[int] = Registry("thing")
    reg.register("alpha", 1, description="first")
    reg.register("beta")(2)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha", 3)
    with pytest.raises(SearchKDError, match=r"unknown thing 'alpah'; did you mean 'alpha'\? \(known: alpha, beta\)"):
        reg.get("alpah")
    assert reg.get("beta") == 2 and reg.description("alpha") == "first" and reg.names() == ["alpha", "beta"]
