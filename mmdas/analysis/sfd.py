"""The salient-feature-detection (sfd) score of the DAS paper (Salajegheh et al., 2023).

How much of a Grad-CAM's attention lies on the object. As far as the paper's text gives it:

* ``R``, the relevant region: the object's pixels (the paper takes them from Grounding-DINO +
  SAM; here from a data set's instance masks, or its boxes where there are no masks);
* the Grad-CAM weights, which Grad-CAM squeezes into [0, 1], are anti-log scaled; we use
  ``s = (base ** cam - 1) / (base - 1)``: it keeps [0, 1] onto [0, 1] and stretches the strong
  responses apart from the weak ones (``base`` 10 by default);
* ``B`` = ``R`` plus the pixels outside ``R`` that the scaled CAM marks as salient,
  ``s >= threshold`` (0.5 by default);
* ``sfd = sum(s over R) / sum(s over B)``.

1 means all the salient attention is on the object, 0 that it is all elsewhere. Attention
outside ``R`` below the threshold is not counted against the score.
"""
import numpy as np

DEFAULT_BASE = 10.0


class UndefinedScore(ValueError):
    """The sfd score does not exist for this CAM: it has no mass on ``R`` or any salient pixel
    (an all-zero Grad-CAM). Tools count such images apart; every other ``ValueError`` is bad
    input."""


DEFAULT_THRESHOLD = 0.5


def antilog_scale(cam: np.ndarray, base: float = DEFAULT_BASE) -> np.ndarray:
    """``(base ** cam - 1) / (base - 1)``: [0, 1] onto [0, 1], strong responses stretched."""
    if not base > 1:
        raise ValueError(f'base must be > 1, got {base}')
    return (np.power(base, cam) - 1) / (base - 1)


def sfd_score(cam: np.ndarray,
              region: np.ndarray,
              base: float = DEFAULT_BASE,
              threshold: float = DEFAULT_THRESHOLD) -> float:
    """sfd of one Grad-CAM against one relevant region (see the module notes for the formula).

    Args:
        cam: ``H x W`` Grad-CAM in [0, 1] (as pytorch-grad-cam returns it).
        region: ``H x W`` boolean mask of the relevant region ``R``.
        base: base of the anti-log scaling, > 1.
        threshold: scaled value from which a pixel outside ``R`` counts as salient, in [0, 1].

    Raises:
        ValueError: shapes differ, ``R`` is empty, the CAM holds NaN, infinities or values
            outside [0, 1], ``threshold`` is outside [0, 1], or the CAM has no mass in ``B``
            (an all-zero CAM: :class:`UndefinedScore`, a ``ValueError``): the score is undefined
            there, and no number is made up.
        TypeError: ``region`` is not boolean.
    """
    cam, region = np.asarray(cam), np.asarray(region)
    if cam.ndim != 2 or cam.shape != region.shape:
        raise ValueError(f'cam and region must be H x W arrays of one shape, got {cam.shape} '
                         f'and {region.shape}')
    if region.dtype != bool:
        raise TypeError(f'region must be a boolean mask, got dtype {region.dtype}')
    if not region.any():
        raise ValueError('region is empty: the sfd score is undefined without an object')
    if not np.isfinite(cam).all():
        raise ValueError('cam holds NaN or infinite values')
    if cam.min() < 0 or cam.max() > 1:
        raise ValueError(f'cam must lie in [0, 1] (a Grad-CAM), got [{cam.min()}, {cam.max()}]')
    if not 0 <= threshold <= 1:
        raise ValueError(f'threshold must be in [0, 1], got {threshold}')
    scaled = antilog_scale(cam.astype(np.float64), base)
    in_b = region | (scaled >= threshold)
    mass_b = scaled[in_b].sum()
    if mass_b == 0:
        raise UndefinedScore('the CAM has no mass on the region or any salient pixel (all '
                             'zero): the sfd score is undefined')
    return float(scaled[region].sum() / mass_b)
