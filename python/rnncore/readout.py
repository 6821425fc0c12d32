"""Many-to-one readouts: one feature row per sequence from an RNN's outputs, and the way back.

Shape letters: T steps, B batch, L layers, D directions, H hidden. Everything here is time-major:
output (T, B, D*H) (zero at padded steps, as `RNN.forward` leaves it), h_n (L*D, B, H).

    "last": feature[b] = [h_n[(L-1)*D][b], h_n[(L-1)*D+1][b]]: the last layer's final states,
            forward then reverse (the forward one at step lengths[b]-1, the reverse one at 0)
    "mean": feature[b] = sum_{t < lengths[b]} output[t, b] / lengths[b]
"""

from __future__ import annotations

import numpy as np

READOUTS = ("all", "last", "mean")


def check_readout(readout: object) -> str:
    if not isinstance(readout, str) or readout not in READOUTS:
        raise ValueError(f"readout: expected one of {', '.join(map(repr, READOUTS))}, "
                         f"got {readout!r}")
    return readout


def pool(readout: str, output: np.ndarray, h_n: np.ndarray, lengths: np.ndarray | None,
         D: int) -> np.ndarray:
    """The (B, D*H) features of `readout` ("last" or "mean")."""
    if readout == "last":
        return np.concatenate(list(h_n[-D:]), axis=-1)
    if lengths is None:
        return output.mean(axis=0)
    return output.sum(axis=0) / lengths[:, None].astype(output.dtype)


def unpool(readout: str, d_feature: np.ndarray, T: int, L: int, D: int,
           lengths: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The gradients (d_output (T, B, D*H), d_h_n (L*D, B, H) or None) that `pool`'s feature
    gradient d_feature (B, D*H) sends back."""
    B, DH = d_feature.shape
    H = DH // D
    if readout == "last":
        d_h_n = np.zeros((L * D, B, H), d_feature.dtype)
        for d in range(D):  # feature = concat(h_n[(L-1)*D + d] for d)
            d_h_n[(L - 1) * D + d] = d_feature[:, d * H:(d + 1) * H]
        return np.zeros((T, B, DH), d_feature.dtype), d_h_n
    # feature = sum over valid t of output[t] / n: every valid step gets d_feature / n (padded
    # steps get it too; the RNN ignores gradients there).
    n = np.full(B, T) if lengths is None else lengths
    scaled = d_feature / n[:, None].astype(d_feature.dtype)
    return np.ascontiguousarray(np.broadcast_to(scaled, (T, B, DH))), None
