"""A synergy task: bits a and b are independent and c = a XOR b, so any two modalities are independent and only
all three together carry information. Pairwise objectives cannot align them; Symile can (Saporta et al. 2024, §5).

Bits are encoded as +-1 (XOR becomes c = -a * b), plus Gaussian noise. With +-1 codes, linear encoders already
suffice for Symile: MIP(a, b, -c) = sum_d a_d b_d (a_d b_d) = d for every positive triple.
"""

from __future__ import annotations

import numpy as np

from pmrl_bench.components import VECTOR, Modality, Split, TaskData


class XorTask:
    """Three bit-vector modalities a, b, c with c = a XOR b (bitwise), seen as +-1 codes with Gaussian noise."""

    def __init__(self, bits: int = 16, n_train: int = 4096, n_test: int = 512, noise: float = 0.1,
                 seed: int = 0) -> None:
        if bits < 1 or n_train < 2 or n_test < 2:
            raise ValueError("need bits >= 1 and n_train, n_test >= 2, "
                             f"got bits={bits}, n_train={n_train}, n_test={n_test}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.bits, self.n_train, self.n_test, self.noise, self.seed = bits, n_train, n_test, noise, seed

    def load(self) -> TaskData:
        rng = np.random.default_rng(self.seed)
        n = self.n_train + self.n_test
        a = rng.integers(0, 2, (n, self.bits))
        b = rng.integers(0, 2, (n, self.bits))
        bits = {"a": a, "b": b, "c": a ^ b}
        inputs = {
            m: (2.0 * x - 1.0 + self.noise * rng.standard_normal(x.shape)).astype(np.float32) for m, x in bits.items()
        }
        cut = self.n_train
        return TaskData(
            [Modality(m, VECTOR, (self.bits,)) for m in bits],
            Split({m: x[:cut] for m, x in inputs.items()}),
            Split({m: x[cut:] for m, x in inputs.items()}),
        )
