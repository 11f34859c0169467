"""Session fixture with the real embedded model (SmolLM2-135M-Instruct), loaded once per test session.

Use it from any test module with::

    from model_fixtures import embedded_backend_fixture  # noqa: F401  (registers "embedded_backend")

    @pytest.mark.model
    def test_something(embedded_backend):
        ...

The first load in a fresh cache dequantizes the GGUF (about 10-20 s) into ``$CAPCAL_CACHE_DIR`` (default
``~/.cache/capcal``); later sessions reload the cached copy in about a second. Keep generations tiny
(``max_tokens`` <= 16, a few prompts): the CI machine has 2 cores.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", name="embedded_backend")
def embedded_backend_fixture():
    """The :class:`capcal.models.embedded.EmbeddedBackend` on the CPU, batch size 16."""
    from capcal.models.embedded import EmbeddedBackend

    backend = EmbeddedBackend(batch_size=16)
    yield backend
    backend.close()


# Importing this name also works (``from model_fixtures import embedded_backend``); the fixture is called
# "embedded_backend" either way. The ``_fixture`` spelling keeps ruff's F811 quiet in the importing module.
embedded_backend = embedded_backend_fixture
