"""The vocabulary every other layer speaks: errors, configs, prunable layers, masks, allocation.

Nothing here imports another part of autosparse; everything else may import from here.
"""
