"""The agency's fast decoding of model weights gives exactly what Flower's own decoding gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord

from clients.arrays import _numpy, state_dict


@pytest.mark.parametrize(
    "value",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.array(2.5, dtype=np.float64),
        np.zeros((0, 3), dtype=np.float32),
        np.arange(6, dtype=np.int64),
        np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),  # Flower's own path
        np.random.default_rng(0).random((64, 23)).astype(np.float32),
    ],
)
def test_fast_decoding_equals_flowers(value):
    array = Array(value)
    mine, theirs = _numpy(array), array.numpy()
    assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
    np.testing.assert_array_equal(mine, theirs)


def test_a_state_dict_owns_its_memory_and_round_trips():
    original = {"w": torch.randn(4, 3), "b": torch.randn(4)}
    decoded = state_dict(ArrayRecord(original))
    for key in original:
        assert torch.equal(decoded[key], original[key])
    decoded["w"].add_(1)  # writable, not a view of the message's bytes
    assert not torch.equal(decoded["w"], original["w"])
