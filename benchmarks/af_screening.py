"""Irregular-rhythm (atrial fibrillation) screening on labelled synthetic R-R series.

Generates series of 128 beats (deterministic for a seed) in four classes and screens each with
``hdhub.monitoring.detectors.screen_rr`` (Dash et al. 2009: normalised RMSSD, Shannon entropy,
turning-point ratio):

- AF: irregularly irregular intervals, independent draws around a mean of 450-900 ms with a
  coefficient of variation of 12-30 % (lognormal);
- sinus rhythm: a mean of 600-1,100 ms with respiratory sinus arrhythmia (a 3-6-beat
  sinusoid of 5-50 ms), slow drift and beat-to-beat noise (sd 5-25 ms);
- sinus with ectopic beats: sinus rhythm where 2-8 % of beats are premature (70-80 % of the
  interval) and followed by a compensatory pause: the classic false positive;
- sinus tachycardia / bradycardia: sinus rhythm at 400-550 ms or 1,100-1,500 ms.

Prints sensitivity (AF found) and specificity (non-AF cleared), overall and per class. There
is no target in the issue beyond printing them; published figures for the method on real
ECGs (MIT-BIH AF database) are a sensitivity of 94.4 % and a specificity of 95.1 %.

    python benchmarks/af_screening.py [--series 4000] [--seed 0] [--beats 128]
"""

from __future__ import annotations

import argparse
import math
import random
import time

from hdhub.monitoring.detectors import screen_rr


def af(rng: random.Random, beats: int) -> list[float]:
    mean, cv = rng.uniform(450, 900), rng.uniform(0.12, 0.30)
    sigma = math.sqrt(math.log(1 + cv * cv))
    mu = math.log(mean) - sigma * sigma / 2
    return [min(2500.0, max(250.0, rng.lognormvariate(mu, sigma))) for _ in range(beats)]


def sinus(rng: random.Random, beats: int, low: float = 600, high: float = 1100) -> list[float]:
    mean = rng.uniform(low, high)
    amplitude, period = rng.uniform(5, 50), rng.uniform(3, 6)
    noise, drift = rng.uniform(5, 25), rng.uniform(-0.5, 0.5)
    phase = rng.uniform(0, 2 * math.pi)
    return [mean + amplitude * math.sin(2 * math.pi * i / period + phase) + drift * i + rng.gauss(0, noise)
            for i in range(beats)]  # fmt: skip


def ectopic(rng: random.Random, beats: int) -> list[float]:
    series = sinus(rng, beats)
    share = rng.uniform(0.02, 0.08)
    i = 1
    while i < beats - 1:
        if rng.random() < share:
            early = rng.uniform(0.7, 0.8)
            base = series[i]
            series[i] = base * early
            series[i + 1] = base * (2 - early)  # compensatory pause
            i += 2
        i += 1
    return series


def rate_extremes(rng: random.Random, beats: int) -> list[float]:
    return sinus(rng, beats, 400, 550) if rng.random() < 0.5 else sinus(rng, beats, 1100, 1500)


CLASSES = {"AF": (af, True), "sinus": (sinus, False), "sinus + ectopic beats": (ectopic, False),
           "sinus tachy/bradycardia": (rate_extremes, False)}  # fmt: skip


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--series", type=int, default=4_000, help="series in all (half of them AF)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--beats", type=int, default=128)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    counts = {"AF": args.series // 2}
    rest = args.series - counts["AF"]
    counts |= {"sinus": rest // 2, "sinus + ectopic beats": rest // 4}
    counts["sinus tachy/bradycardia"] = rest - counts["sinus"] - counts["sinus + ectopic beats"]
    print(f"{args.series:,} labelled series of {args.beats} beats (seed {args.seed})")
    print("| class | series | flagged irregular | rate |")
    print("|---|---|---|---|")
    totals = {True: [0, 0], False: [0, 0]}  # is AF -> [flagged, all]
    started = time.perf_counter()
    for name, (make, is_af) in CLASSES.items():
        flagged = 0
        for _ in range(counts[name]):
            screen = screen_rr(make(rng, args.beats))
            flagged += bool(screen and screen.irregular)
        totals[is_af][0] += flagged
        totals[is_af][1] += counts[name]
        label = "sensitivity" if is_af else "false positives"
        print(f"| {name} | {counts[name]:,} | {flagged:,} | {flagged / counts[name]:.3f} ({label}) |")
    seconds = time.perf_counter() - started
    sensitivity = totals[True][0] / totals[True][1]
    specificity = 1 - totals[False][0] / totals[False][1]
    print(f"sensitivity {sensitivity:.3f}, specificity {specificity:.3f} "
          f"({args.series / seconds:,.0f} series/s including generation)")  # fmt: skip


if __name__ == "__main__":
    main()
