"""Initial loss and trained accuracy of `autos` masks with and without their θ0 rescale.

docs/SCORER.md, "Trainable at depth". Conv-4 w0.25 (a source shape, not a test net), seeds 0-1,
densities 2% and 1%. Usage: ``python docs/experiments/rescale_probe.py N_TRAIN EPOCHS`` (run: 10000 6).
"""

from __future__ import annotations

import copy
import sys

import torch
import torch.nn.functional as F

import autosparse as A
from autosparse.training.trainer import TrainConfig, train


def main(n_train: int, epochs: float) -> None:
    torch.set_num_threads(2)
    ds = A.load_dataset("fashion-mnist")
    sub = ds.subset(n_train=n_train, n_test=2000, seed=0)
    for seed in (0, 1):
        model = A.build_model("conv4", (1, 28, 28), 10, seed=seed, width=0.25)
        data = A.pruning_batch(ds, samples_per_class=10, seed=seed)
        x, y = data.batches[0]
        for density in (0.02, 0.01):
            masks = A.prune(model, "autos", density=density, data=data)
            for label, m in (("rescale", masks), ("no rescale", masks.without_init())):
                net = copy.deepcopy(model)
                m.prepare(net)  # the θ0 rescale, once; training then gets the masks without it
                with torch.no_grad():
                    probe = copy.deepcopy(net)
                    for name, p in probe.named_parameters():
                        if name in m:
                            p.mul_(m[name])
                    loss0 = F.cross_entropy(probe(x), y).item()
                cfg = TrainConfig(epochs=epochs, lr=0.05, seed=seed)
                result = train(net, sub, cfg, masks=m.without_init())
                print(
                    f"seed {seed} density {density} {label}: initial loss {loss0:.2f}, "
                    f"test {100 * result.test_accuracy:.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
