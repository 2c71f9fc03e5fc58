"""The learned scorer: ranker architectures, one fit loop, the layer heads, checkpoints and ``autos``.

Importing the package registers the ranker architectures (:mod:`autosparse.scorer.archs`), so that
every :class:`~autosparse.scorer.config.ScorerConfig` and every card is checked against a full registry,
whichever scorer module is imported first.
"""

from __future__ import annotations

import autosparse.scorer.archs  # noqa: F401  (registers mlp and gnn)
