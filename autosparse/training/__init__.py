"""Training a (masked) network, and iterative rewind pruning, which is training in rounds."""

from autosparse.training.trainer import TrainConfig, TrainResult, evaluate, train

__all__ = ["TrainConfig", "TrainResult", "evaluate", "train"]
