"""``SequentialDetector`` alone: reordered kernel reads still count as sequential, a jump resets."""

from __future__ import annotations

from algofs_jupyter.mount.sequential import SequentialDetector

KiB = 1 << 10


def test_a_read_from_the_start_is_sequential_after_the_trigger() -> None:
    detector = SequentialDetector(trigger=2)
    first = detector.observe("h", 0, 128 * KiB)
    assert not first.sequential and first.from_start
    assert detector.observe("h", 128 * KiB, 256 * KiB).sequential


def test_slightly_reordered_reads_count_as_sequential() -> None:
    detector = SequentialDetector(trigger=2)
    detector.observe("h", 0, 128 * KiB)
    detector.observe("h", 256 * KiB, 384 * KiB)  # a later request overtook one
    assert detector.observe("h", 128 * KiB, 256 * KiB).sequential


def test_a_jump_resets_and_sequential_reads_bring_it_back() -> None:
    detector = SequentialDetector(trigger=2)
    for offset in range(0, 1024 * KiB, 128 * KiB):
        detector.observe("h", offset, offset + 128 * KiB)
    far = 512 << 20
    jumped = detector.observe("h", far, far + 8)
    assert not jumped.sequential and not jumped.from_start
    detector.observe("h", far + 8, far + 128 * KiB)
    assert detector.observe("h", far + 128 * KiB, far + 256 * KiB).sequential  # never latched into random


def test_streams_are_independent_and_bounded() -> None:
    detector = SequentialDetector(trigger=2, max_streams=2)
    detector.observe("a", 0, 10)
    detector.observe("b", 0, 10)
    detector.observe("c", 0, 10)  # "a" is forgotten: it starts over
    assert not detector.observe("a", 10, 20).sequential
    assert detector.observe("c", 10, 20).sequential
