"""``autos``: prune an unseen architecture at init with a scorer learned from IRP labels.

One shot: measure the scorer's features at θ0 on the pruning batch (the same code that made the
training data), rank weights within each layer with the ranker, and give each layer the number
of weights the allocator predicts IMP would have kept there at this density — turned into exact
counts, at least one per layer. With a unit head on the scorer (``units="learned"``), each
hidden linear layer's weights go to its best ``scale ×`` (predicted alive fraction) output
units — IMP's structure inside a layer, not only its allocation across layers (docs/SCORER.md).
Then the connectivity repair puts every kept weight on an input→output path. ``allocation`` can
instead borrow a classic rule (global, uniform, ERK, SynFlow's per-layer share) to study ranking alone;
those keep the rule's own counts (``global`` has no one-per-layer floor, and can empty a layer).

Where the scorer would extrapolate — layers unlike its sources', densities where its teacher
failed, an allocation that disconnects the net — guards hand over to a safe rule and say so.

The package reads in the order of a call: :mod:`.config` (the options), :mod:`.call` (what one
call shares: the path network, SynFlow's mask, the learned scores), :mod:`.learned` (the learned
mask; :mod:`.flow` its ``flow_rounds`` ablation), :mod:`.guards` (the range, density and student guards, SynFlow's mask as a fallback) and
:mod:`.pruner` (the registered pruner and the order of the checks). Importing the package
registers the method (the ``autosparse.methods`` entry point names it).
"""

from autosparse.scorer.autos.config import DEFAULT_SCORER, AutosConfig
from autosparse.scorer.autos.pruner import Autos

__all__ = ["DEFAULT_SCORER", "Autos", "AutosConfig"]
