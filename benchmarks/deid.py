"""De-identification of French clinical notes: accuracy per entity type and speed on one core.

Builds ``labelled_notes(N)`` (default 1,000 synthetic notes from 16 templates, deterministic for
``--seed``; see ``hdhub.synth.labelled_notes``) and runs ``hdhub.privacy.note_deid`` on them:

- precision, recall and F1 per entity type (NAME, DATE, PHONE, EMAIL, ADDRESS, NIR, IPP, ID) and
  overall. A labelled entity is found when predicted spans of its type cover all its characters;
  a predicted span is right when it overlaps a labelled entity of its type;
- the recall of the name mentions whose words are all outside the de-identifier's name lists
  (held out by the generator) beside the others, so that the list look-ups are not what is measured;
- the rate of ``deidentify`` (with a date shift) in notes per second, in this single process
  (one core), median of 3 timed runs over all the notes after one warm-up run; and the mean length
  of a note.

Targets: recall >= 0.95 for every type; >= 2,000 notes/s on one core.

    python benchmarks/deid.py [--notes 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time

from hdhub.privacy import note_deid
from hdhub.privacy.note_deid import deidentify
from hdhub.synth.labelled_notes import LabelledNote, Score, evaluate, labelled_notes

TARGET_RATE = 2_000  # notes per second on one core
TARGET_RECALL = 0.95
MIN_NOTES = 200


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def timed_rate(texts: list[str]) -> float:
    """Notes per second of ``deidentify``: median of 3 runs after a warm-up."""
    for t in texts:
        deidentify(t, date_shift_days=17)
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        for t in texts:
            deidentify(t, date_shift_days=17)
        runs.append(time.perf_counter() - started)
    return len(texts) / statistics.median(runs)


def held_out_recall(notes: list[LabelledNote]) -> tuple[Score, Score]:
    """NAME recall of the mentions whose words are all outside the de-identifier's lists, and of
    the mentions with at least one listed word."""
    listed = {note_deid._fold(n) for n in note_deid.FIRST_NAMES + note_deid.SURNAMES}
    held, known = Score(), Score()
    for note in notes:
        covered = bytearray(len(note.text))
        for e in note_deid.find_entities(note.text):
            if e.type == "NAME":
                covered[e.start : e.end] = b"\x01" * (e.end - e.start)
        for g in note.entities:
            if g.type != "NAME":
                continue
            words = [w for w in re.split(r"[ \-]", note.text[g.start : g.end]) if len(w) > 1 and "." not in w]
            score = known if any(note_deid._fold(w) in listed for w in words) else held
            if covered.find(0, g.start, g.end) < 0:
                score.found += 1
            else:
                score.missed += 1
    return held, known


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=1_000, help=f"at least {MIN_NOTES}")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.notes < MIN_NOTES:
        parser.error(f"--notes must be at least {MIN_NOTES}")

    notes = labelled_notes(args.notes, seed=args.seed)
    texts = [n.text for n in notes]
    gold = sum(len(n.entities) for n in notes)
    print(f"{len(notes):,} labelled notes (seed {args.seed}), {gold:,} labelled entities")

    scores = evaluate(notes)
    cols = f"{'labelled':>8} {'found':>6} {'recall':>7} {'spans':>6} {'precision':>9} {'F1':>6}"
    head = f"{'type':8} {cols}  target"
    print("\n" + head)
    print("-" * len(head))
    for kind, s in scores.items():
        verdict = "" if kind == "ALL" else ("met" if s.recall >= TARGET_RECALL else "NOT met")
        print(
            f"{kind:8} {s.found + s.missed:>8,} {s.found:>6,} {s.recall:>7.3f} "
            f"{s.true_spans + s.false_spans:>6,} {s.precision:>9.3f} {s.f1:>6.3f}  "
            f"{'recall >= ' + str(TARGET_RECALL) + ' ' + verdict if verdict else ''}"
        )
    held, known = held_out_recall(notes)
    print(
        f"\nNAME mentions with every word outside the de-identifier's lists: recall {held.recall:.3f} "
        f"({held.found:,}/{held.found + held.missed:,}); with a listed word: recall {known.recall:.3f} "
        f"({known.found:,}/{known.found + known.missed:,})"
    )

    chars = sum(map(len, texts)) / len(texts)
    size = sum(len(t.encode()) for t in texts) / len(texts)
    rate = timed_rate(texts)
    print(
        f"\ndeidentify (date shift on): {rate:,.0f} notes/s on one core (single process; median of 3 runs "
        f"after a warm-up; load average {load()})"
    )
    print(f"  target {TARGET_RATE:,} notes/s/core: {'met' if rate >= TARGET_RATE else 'NOT met'}")
    print(f"  mean note length {chars:,.0f} chars ({size:,.0f} B UTF-8), {rate * size / 1e6:.1f} MB/s")


if __name__ == "__main__":
    main()
