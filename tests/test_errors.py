"""User errors name their fix: the suggestion an unknown name gets."""

from __future__ import annotations

import pytest

from autosparse.core.errors import UnknownNameError

METHODS = ["random", "random_erk", "snip", "synflow", "iter_snip", "npb"]


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("SNIP", "snip"),  # case: names are case-sensitive, but point at the one meant
        ("synflw", "synflow"),  # a typo
        ("erk", "random_erk"),  # the paper's short name for one longer name
    ],
)
def test_an_unknown_name_suggests_the_one_meant(name: str, meant: str) -> None:
    with pytest.raises(UnknownNameError, match=rf"unknown pruning method '{name}' \(did you mean '{meant}'\?\)"):
        raise UnknownNameError("pruning method", name, METHODS)


def test_a_short_name_in_several_names_suggests_none() -> None:
    # "erk" is a part of both: guessing one would send the user to a method they did not mean
    with pytest.raises(UnknownNameError) as info:
        raise UnknownNameError("pruning method", "erk", ["random_erk_uniform", "scaled_erk_global"])
    assert "did you mean" not in str(info.value)
    with pytest.raises(UnknownNameError) as info:
        raise UnknownNameError("pruning method", "zzz", METHODS)
    assert "did you mean" not in str(info.value)


def test_class_counts_take_integers_of_any_kind_and_nothing_else() -> None:
    import numpy as np
    import torch

    from autosparse.core.errors import ConfigError, check_class_count

    assert [check_class_count(v) for v in (3, np.int64(3), torch.tensor(2) + 1)] == [3, 3, 3]
    for bad in (0, -1, 2.5, True, torch.tensor(3.0), "3", None):
        with pytest.raises(ConfigError, match="num_classes must be a positive integer"):
            check_class_count(bad)


def test_failure_lines_name_each_failed_job_and_the_disk_fix_once() -> None:
    """gen, bench and store refeaturize print these; a full disk fails every job after it, each
    with a bare OSError, so the fix is said once after them, in the command's own words."""
    from autosparse.core.errors import DISK_FULL_FIX, failure_lines

    full = "OSError: [Errno 28] No space left on device: '/x'\nTraceback ..."
    lines = failure_lines([("a", "ValueError: bad\nmore"), ("b", full), ("c", full), ("d", None), ("e", "")])
    assert lines == [
        "FAILED a: ValueError: bad",
        "FAILED b: OSError: [Errno 28] No space left on device: '/x'",
        "FAILED c: OSError: [Errno 28] No space left on device: '/x'",
        "FAILED d: ",
        "FAILED e: ",
        f"the disk is full: {DISK_FULL_FIX}",
    ]
    assert failure_lines([("a", "ValueError: bad")], "own fix") == ["FAILED a: ValueError: bad"]
    assert failure_lines([("b", full)], "own fix")[-1] == "the disk is full: own fix"


def test_check_flag_takes_bools_numpy_bools_and_zero_or_one_but_no_strings() -> None:
    """numpy 2 names its bool type "bool" (review); 0 and 1 were accepted before the check."""
    import numpy as np
    import pytest

    from autosparse.core.errors import ConfigError, check_flag

    for value, expected in ((True, True), (np.False_, False), (np.True_, True), (1, True), (0, False)):
        assert check_flag(value, "apply") is expected
    for bad in ("False", "no", 2, None):
        with pytest.raises(ConfigError, match="apply takes True or False"):
            check_flag(bad, "apply")
