"""Shared, expensive fixtures: made once per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smoke_model(tmp_path_factory):
    """A tiny random-weight Llama with a tokenizer trained on the spot (see corpus.smoke)."""
    from corpus.smoke import make_smoke_model

    return make_smoke_model(tmp_path_factory.mktemp("smoke-model"))
