"""The exponential sine sweep (Farina), synchronised so that its harmonic products fall at
exactly predictable times.

References
----------
.. [1] A. Farina, "Simultaneous measurement of impulse response and distortion with a
   swept-sine technique", 108th AES Convention, Paris, 2000, preprint 5093.
.. [2] A. Novák, L. Simon, F. Kadlec, P. Lotton, "Nonlinear system identification using
   exponential swept-sine signal", IEEE Trans. Instrum. Meas. 59(8), 2220-2229, 2010.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sonalyze.acoustics.signals import Signal


@dataclass(frozen=True)
class Sweep:
    """An exponential sine sweep as played: ``signal`` at ``fs`` from ``f1`` to ``f2``.

    ``rate`` is the sweep's time constant L (s): the instantaneous frequency is
    ``f1 * exp(t / L)``, so the k-th harmonic leads the linear response by ``L * ln(k)``.
    """

    signal: Signal
    fs: int
    f1: float
    f2: float
    rate: float

    @property
    def duration(self) -> float:
        return len(self.signal) / self.fs


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive finite number, not {value!r}")


def exponential_sweep(
    f1: float,
    f2: float,
    duration: float,
    fs: int,
    *,
    fade_in: float = 0.0,
    fade_out: float = 0.01,
    amplitude: float = 1.0,
) -> Sweep:
    """Design a synchronised exponential sine sweep.

    Parameters
    ----------
    f1, f2 : float
        Start and end frequency in Hz, ``0 < f1 < f2 <= fs / 2``.
    duration : float
        Approximate length in s; it is adjusted so that the sweep's rate L makes
        ``f1 * L`` an integer, the condition for exactly placed harmonics [2]_.
    fs : int
        Sample rate in Hz.
    fade_in, fade_out : float
        Lengths in s of raised-cosine fades at the start and the end (the end fade keeps the
        sweep from ending in a click; a fade-in is rarely needed, the sweep starts at phase 0).
    amplitude : float
        Peak amplitude, at most 1.

    Returns
    -------
    Sweep
        ``x(t) = amplitude * sin(2 pi f1 L (exp(t / L) - 1))`` with ``L = round(f1 T /
        ln(f2 / f1)) / f1`` [1]_ [2]_.

    Raises
    ------
    ValueError
        For frequencies out of order or above Nyquist, a non-positive duration, fades longer
        than the sweep or an amplitude outside (0, 1].
    """
    _check_positive(f1=f1, f2=f2, duration=duration, fs=fs, amplitude=amplitude)
    if not f1 < f2 <= fs / 2:
        raise ValueError(f"need 0 < f1 < f2 <= fs / 2, got f1={f1}, f2={f2}, fs={fs}")
    if amplitude > 1:
        raise ValueError(f"amplitude must be at most 1 (full scale), not {amplitude}")
    if fade_in < 0 or fade_out < 0 or fade_in + fade_out > duration:
        raise ValueError("fades must be non-negative and together no longer than the sweep")
    octaves = np.log(f2 / f1)
    rate = max(1, round(f1 * duration / octaves)) / f1
    n = round(rate * octaves * fs)
    t = np.arange(n) / fs
    signal = amplitude * np.sin(2 * np.pi * f1 * rate * (np.exp(t / rate) - 1))
    signal *= _fades(n, round(fade_in * fs), round(fade_out * fs))
    return Sweep(signal=signal, fs=int(fs), f1=float(f1), f2=float(f2), rate=float(rate))


def inverse_filter(sweep: Sweep) -> Signal:
    """Farina's inverse filter: the sweep reversed in time, its amplitude falling 6 dB per
    octave (``exp(-t / L)``), so that the sweep convolved with it is a band-limited impulse at
    ``len(sweep) - 1`` with a flat spectrum at 0 dB [1]_.

    The exponential sweep spends a time proportional to ``1 / f`` at each frequency, so its
    power spectrum falls 3 dB per octave; the filter's rises as much. The scale follows from the
    stationary-phase spectrum of both, ``|X(f)|**2 = (A fs / 2) ** 2 L / f`` for amplitude ``A``
    [2]_: ``4 f2 / (A**2 L fs**2)``, for the sample rate ``fs`` and the rate ``L``.

    Parameters
    ----------
    sweep : Sweep

    Returns
    -------
    Signal
        As long as the sweep. :func:`~sonalyze.acoustics.deconvolve` divides by the sweep's
        spectrum instead, with regularisation outside its band; this filter is the classic
        alternative, a plain convolution.
    """
    t = np.arange(sweep.signal.size) / sweep.fs
    amplitude = float(np.max(np.abs(sweep.signal)))
    scale = 4 * sweep.f2 / (amplitude**2 * sweep.rate * sweep.fs**2)
    inverse: Signal = sweep.signal[::-1] * np.exp(-t / sweep.rate) * scale
    return inverse


def _fades(n: int, n_in: int, n_out: int) -> Signal:
    window = np.ones(n)
    if n_in:
        window[:n_in] = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_in) / n_in)
    if n_out:
        window[n - n_out :] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(n_out) + 1) / n_out)
    return window
