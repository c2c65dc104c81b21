"""One way to fingerprint an array: SHA-256 of its bytes, with its dtype and shape unless they are recorded apart.

The golden `prepared` table lists dtype and shape in rows of their own, so its digest is of the
bytes alone (`layout=False`, as reviewed and committed); everywhere else a recast or reshaped
array must read as a different one (`layout=True`): baselines, and the memo of sampled cases.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["array_sha256"]


def array_sha256(values: np.ndarray, *, layout: bool = True) -> str:
    a = np.ascontiguousarray(values)
    head = f"{a.dtype}|{a.shape}|".encode() if layout else b""
    return hashlib.sha256(head + a.tobytes()).hexdigest()
