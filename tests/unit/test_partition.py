"""partition(): the one way every backend cuts input files into mini-batches."""

from __future__ import annotations

import random

import pytest

from shared.errors import InvalidValue
from shared.workspace.partition import partition


def test_chunks_in_name_order_with_a_short_last_batch() -> None:
    files = [f"/data/Store{n}_dominicks.csv" for n in (1003, 1001, 1004, 1000, 1002)]
    assert partition(files, mini_batch_size=2) == [
        ["/data/Store1000_dominicks.csv", "/data/Store1001_dominicks.csv"],
        ["/data/Store1002_dominicks.csv", "/data/Store1003_dominicks.csv"],
        ["/data/Store1004_dominicks.csv"],
    ]


def test_same_batches_whatever_the_input_order() -> None:
    files = [f"in/s{n:04d}.csv" for n in range(257)]
    expected = partition(files, mini_batch_size=10)
    for seed in range(5):
        shuffled = files[:]
        random.Random(seed).shuffle(shuffled)
        assert partition(shuffled, mini_batch_size=10) == expected


def test_every_item_exactly_once_and_no_batch_too_big() -> None:
    files = [f"d{n % 3}/f{n}.csv" for n in range(100)] + ["d0/f1.csv"]  # one duplicate
    batches = partition(files, mini_batch_size=7)
    flat = [f for b in batches for f in b]
    assert sorted(flat) == sorted(set(files))
    assert all(1 <= len(b) <= 7 for b in batches)


def test_orders_by_file_name_before_folder() -> None:
    # Blob downloads and local folders put the same files under different parents: the
    # file name decides, the full path only breaks ties.
    assert partition(["z/a.csv", "a/b.csv", "b/a.csv"], mini_batch_size=10) == [["b/a.csv", "z/a.csv", "a/b.csv"]]


def test_empty_input_gives_no_batches() -> None:
    assert partition([], mini_batch_size=5) == []


@pytest.mark.parametrize("size", [0, -1, 2.5, "10", True, None])
def test_rejects_a_bad_mini_batch_size(size: object) -> None:
    with pytest.raises(InvalidValue, match="mini_batch_size"):
        partition(["a.csv"], mini_batch_size=size)  # type: ignore[arg-type]
