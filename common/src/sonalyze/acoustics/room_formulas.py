"""Reverberation time per band from a room's volume, surfaces and absorption: Sabine and Eyring.

Both formulas assume a diffuse sound field and give the time for the energy to fall by 60 dB,

- Sabine [1]_: ``T = 24 ln(10) V / (c (A + 4 m V))`` with ``A = sum(S_i alpha_i)``,
- Eyring [2]_: ``T = 24 ln(10) V / (c (-S ln(1 - alpha_mean) + 4 m V))`` with ``S = sum(S_i)``
  and ``alpha_mean = A / S``,

where ``V`` is the volume (m^3), ``S_i`` and ``alpha_i`` the surfaces' areas (m^2) and random-
incidence absorption coefficients, ``c`` the speed of sound (m/s) and ``m`` the air's energy
attenuation coefficient (1/m) [3]_ [4]_ [5]_. ``24 ln(10) / c`` is 0.161 s/m at 343 m/s. Eyring's
formula is the longer-standing correction of Sabine's for absorbent rooms: for small
``alpha_mean`` they agree (Eyring is shorter by a relative ``alpha_mean / 2`` or so), and as
``alpha_mean`` goes to 1 Eyring's time goes to 0 while Sabine's stays at ``0.161 V / S``.

Air absorption. ``m`` is the attenuation of sound energy per metre, so that energy falls as
``exp(-m x)`` over a path ``x``. Tables of the air's attenuation (ISO 9613-1) give it as a level
``a`` in dB/m: ``m = a / (10 log10(e)) = a / 4.343``.

References
----------
.. [1] W. C. Sabine, "Collected Papers on Acoustics", Harvard University Press, 1922.
.. [2] C. F. Eyring, "Reverberation time in 'dead' rooms", J. Acoust. Soc. Am. 1(2), 217-241,
   1930.
.. [3] ISO 3382-2:2008, "Acoustics - Measurement of room acoustic parameters - Part 2:
   Reverberation time in ordinary rooms", Annex A (the equivalent absorption area and the
   ``4 m V`` term).
.. [4] EN 12354-6:2003, "Building acoustics - Estimation of acoustic performance of buildings
   from the performance of elements - Part 6: Sound absorption in enclosed spaces".
.. [5] H. Kuttruff, "Room Acoustics", 5th ed., Spon Press, 2009, chapter 5 (reverberation time,
   ``24 ln(10) / c``, Sabine's and Eyring's formulas, air attenuation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from sonalyze.acoustics.signals import Signal

SPEED_OF_SOUND = 343.0  # m/s, in air at about 20 °C


def _number(value: float, name: str) -> float:
    """``value`` as a finite float, or a ``ValueError`` naming ``name``."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if array.ndim != 0:
        raise ValueError(f"{name} must be a single number, not shape {array.shape}")
    if not np.isfinite(array):
        raise ValueError(f"{name} must be finite, not {float(array)}")
    return float(array)


def _array(values: ArrayLike, name: str) -> Signal:
    """``values`` as a float64 array of finite numbers, or a ``ValueError`` naming ``name``."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, not {values!r}") from None
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _surfaces(areas: Sequence[float] | ArrayLike, absorption: ArrayLike) -> tuple[Signal, Signal]:
    """The areas (n_surfaces,) and absorption coefficients (n_surfaces, n_bands), checked."""
    s = _array(areas, "areas")
    if s.ndim != 1:
        raise ValueError(f"areas must be a 1-D sequence of surface areas, not shape {s.shape}")
    if np.any(s <= 0):
        raise ValueError(f"areas must all be positive (m^2), not {s.min()}")
    alpha = _array(absorption, "absorption")
    if alpha.ndim == 1:
        alpha = alpha[:, np.newaxis]
    if alpha.ndim != 2:
        raise ValueError(
            f"absorption must have shape (n_surfaces,) or (n_surfaces, n_bands), not {alpha.shape}"
        )
    if alpha.shape[0] != s.size:
        raise ValueError(
            f"absorption has {alpha.shape[0]} rows but there are {s.size} areas: "
            f"one row of coefficients per surface"
        )
    if np.any(alpha < 0) or np.any(alpha > 1):
        raise ValueError(
            f"absorption coefficients must lie in [0, 1], not {alpha.min()} to {alpha.max()}"
        )
    return s, alpha


def _room(
    volume: float,
    air_attenuation: float | ArrayLike | None,
    speed_of_sound: float,
    n_bands: int,
) -> tuple[float, Signal, float]:
    """The volume, the air's ``4 m V`` per band and the speed of sound, checked."""
    v = _number(volume, "volume")
    if v <= 0:
        raise ValueError(f"volume must be positive (m^3), not {v}")
    c = _number(speed_of_sound, "speed_of_sound")
    if c <= 0:
        raise ValueError(f"speed_of_sound must be positive (m/s), not {c}")
    if air_attenuation is None:
        m = np.zeros(n_bands)
    else:
        m = _array(air_attenuation, "air_attenuation")
        if m.ndim == 0:
            m = np.full(n_bands, float(m))
        elif m.shape != (n_bands,):
            raise ValueError(
                f"air_attenuation must be one number or one per band ({n_bands}), "
                f"not shape {m.shape}"
            )
        if np.any(m < 0):
            raise ValueError(f"air_attenuation must not be negative (1/m), not {m.min()}")
    return v, 4 * m * v, c


def _reverberation_time(volume: float, absorption_area: Signal, speed_of_sound: float) -> Signal:
    """``24 ln(10) V / (c A)`` per band, or a ``ValueError`` for a band with no absorption."""
    silent = np.flatnonzero(absorption_area == 0)
    if silent.size:
        raise ValueError(
            f"the room absorbs nothing in band {int(silent[0])} (every absorption coefficient "
            f"and the air attenuation are 0): its reverberation time would be infinite"
        )
    t: Signal = 24 * np.log(10) * volume / (speed_of_sound * absorption_area)
    return t


def mean_absorption(areas: Sequence[float] | ArrayLike, absorption: ArrayLike) -> Signal:
    """The area-weighted mean absorption coefficient per band, ``sum(S_i alpha_i) / sum(S_i)``.

    Parameters
    ----------
    areas : sequence of float
        The surfaces' areas in m^2, each positive.
    absorption : array_like
        Absorption coefficients in [0, 1], shape (n_surfaces, n_bands), or (n_surfaces,) for
        one band.

    Returns
    -------
    Signal
        Shape (n_bands,): (1,) for one-dimensional ``absorption``.

    Raises
    ------
    ValueError
        For empty, non-finite or non-positive areas, coefficients outside [0, 1], or a number
        of coefficient rows other than the number of areas.

    References
    ----------
    .. [1] C. F. Eyring, "Reverberation time in 'dead' rooms", J. Acoust. Soc. Am. 1(2),
       217-241, 1930.
    """
    s, alpha = _surfaces(areas, absorption)
    mean: Signal = s @ alpha / s.sum()
    return mean


def sabine(
    volume: float,
    areas: Sequence[float] | ArrayLike,
    absorption: ArrayLike,
    *,
    air_attenuation: float | ArrayLike | None = None,
    speed_of_sound: float = SPEED_OF_SOUND,
) -> Signal:
    """Sabine's reverberation time per band, ``24 ln(10) V / (c (A + 4 m V))``.

    Parameters
    ----------
    volume : float
        The room's volume in m^3, positive.
    areas : sequence of float
        The surfaces' areas in m^2, each positive.
    absorption : array_like
        Absorption coefficients in [0, 1], shape (n_surfaces, n_bands), or (n_surfaces,) for
        one band; ``A = sum(S_i alpha_i)``.
    air_attenuation : float or array_like, optional
        The air's energy attenuation coefficient ``m`` in 1/m (not dB/m: see the module's
        notes), one number or one per band, each >= 0. None (the default) leaves the air out.
    speed_of_sound : float
        In m/s, positive.

    Returns
    -------
    Signal
        T60 in seconds, shape (n_bands,): (1,) for one-dimensional ``absorption``.

    Raises
    ------
    ValueError
        For a bad argument (see :func:`mean_absorption`; a non-positive or non-finite volume or
        speed of sound; a negative, non-finite or wrongly shaped air attenuation), or a band in
        which nothing absorbs (every coefficient and the air attenuation 0), whose time would be
        infinite.

    References
    ----------
    .. [1] W. C. Sabine, "Collected Papers on Acoustics", Harvard University Press, 1922.
    .. [2] ISO 3382-2:2008, Annex A; H. Kuttruff, "Room Acoustics", 5th ed., 2009, 5.1 and 5.3.
    """
    s, alpha = _surfaces(areas, absorption)
    v, air, c = _room(volume, air_attenuation, speed_of_sound, alpha.shape[1])
    return _reverberation_time(v, s @ alpha + air, c)


def eyring(
    volume: float,
    areas: Sequence[float] | ArrayLike,
    absorption: ArrayLike,
    *,
    air_attenuation: float | ArrayLike | None = None,
    speed_of_sound: float = SPEED_OF_SOUND,
) -> Signal:
    """Eyring's reverberation time per band, ``24 ln(10) V / (c (-S ln(1 - a) + 4 m V))``.

    ``S`` is the total area and ``a`` the area-weighted mean absorption coefficient
    (:func:`mean_absorption`). In a band where every surface absorbs fully (``a == 1``) the
    time is 0: the limit of the formula, and the case Eyring's correction was made for (there is
    no reverberation in a room whose walls reflect nothing), where Sabine's formula still gives
    ``0.161 V / S``.

    Parameters
    ----------
    volume : float
        The room's volume in m^3, positive.
    areas : sequence of float
        The surfaces' areas in m^2, each positive.
    absorption : array_like
        Absorption coefficients in [0, 1], shape (n_surfaces, n_bands), or (n_surfaces,) for
        one band.
    air_attenuation : float or array_like, optional
        The air's energy attenuation coefficient ``m`` in 1/m (not dB/m: see the module's
        notes), one number or one per band, each >= 0. None (the default) leaves the air out.
    speed_of_sound : float
        In m/s, positive.

    Returns
    -------
    Signal
        T60 in seconds, shape (n_bands,): (1,) for one-dimensional ``absorption``.

    Raises
    ------
    ValueError
        As :func:`sabine`.

    References
    ----------
    .. [1] C. F. Eyring, "Reverberation time in 'dead' rooms", J. Acoust. Soc. Am. 1(2),
       217-241, 1930.
    .. [2] H. Kuttruff, "Room Acoustics", 5th ed., 2009, 5.3 and 5.4.
    """
    s, alpha = _surfaces(areas, absorption)
    v, air, c = _room(volume, air_attenuation, speed_of_sound, alpha.shape[1])
    total = s.sum()
    # Below 1 unless every surface absorbs fully, also where rounding would make it 1.
    mean = np.minimum(s @ alpha / total, np.nextafter(1.0, 0.0))
    dead = np.all(alpha == 1, axis=0)
    # A fully absorbing band's absorption area is infinite, and its time 0 (not a log of 0).
    surface_term = np.where(dead, np.inf, -total * np.log1p(-np.where(dead, 0.0, mean)))
    return _reverberation_time(v, surface_term + air, c)
