"""i2b2-style obfuscation: a floor, Gaussian noise of the configured sigma, and no averaging."""

from __future__ import annotations

import statistics

from hdhub.cohorts.disclosure import Obfuscator

OBF = Obfuscator(b"k" * 32, threshold=10, sigma=1.3)


def test_counts_below_the_threshold_are_hidden() -> None:
    assert [OBF.show(n, "persons") for n in (0, 1, 9)] == ["< 10"] * 3
    assert all(isinstance(OBF.show(n, "persons"), int) for n in range(10, 200))
    assert min(OBF.show(n, "persons") for n in range(10, 2000)) >= 10  # never shown below the floor


def test_noise_has_the_configured_spread_and_no_bias() -> None:
    noise = [OBF.noise(n, "persons") for n in range(1000, 21000)]
    assert abs(statistics.mean(noise)) < 0.05
    assert 1.2 < statistics.stdev(noise) < 1.5  # sigma 1.3, rounded to whole persons
    assert max(abs(x) for x in noise) <= 8


def test_the_same_answer_always_shows_the_same_number() -> None:
    """Repeating a question, or rephrasing it, cannot average the noise away."""
    assert len({OBF.show(1234, "persons") for _ in range(50)}) == 1
    other_key = Obfuscator(b"z" * 32)
    assert [OBF.noise(n, "persons") for n in range(100, 200)] != [
        other_key.noise(n, "persons") for n in range(100, 200)
    ]
