"""The network's topology: the traced unit graph, path counts, connectivity repair, diagnostics."""
