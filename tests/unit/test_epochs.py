"""A changelog read in order leaves out the records of a writer whose epoch ended at a later owner's
fence (services/runtime/fixes/epochs.py): what a worker cut off from the broker sends after the heal."""

from __future__ import annotations

from services.runtime.fixes.epochs import NO_FENCE, admitted, epoch_headers, owner_fence_headers

Record = tuple[int, list[tuple[str, bytes]]]


def applied(records: list[Record], newest: int = NO_FENCE) -> list[int]:
    out = []
    for offset, headers in records:
        take, newest = admitted(offset, headers, newest)
        if take:
            out.append(offset)
    return out


def test_records_after_a_later_owners_fence_from_an_earlier_epoch_are_left_out() -> None:
    log: list[Record] = [
        (10, owner_fence_headers()),  # A is given the partition: epoch 10
        (11, epoch_headers(10)),
        (12, epoch_headers(10)),
        (13, owner_fence_headers()),  # A cut off; B is given it: epoch 13
        (14, epoch_headers(13)),
        (15, epoch_headers(10)),  # A's queued record, sent when the link healed
        (16, epoch_headers(13)),
        (17, owner_fence_headers()),  # A given it back: epoch 17
        (18, epoch_headers(17)),
    ]
    assert applied(log) == [10, 11, 12, 13, 14, 16, 17, 18]


def test_a_restore_resuming_mid_log_remembers_the_newest_fence() -> None:
    assert applied([(15, epoch_headers(10)), (16, epoch_headers(13))], newest=13) == [16]


def test_records_without_an_epoch_and_standby_fences_are_applied() -> None:
    """Written before epochs, or a fence appended by a standby (no owner header): no epoch begins."""
    log: list[Record] = [(0, []), (1, epoch_headers(0)), (2, []), (3, epoch_headers(0))]
    assert applied(log) == [0, 1, 2, 3]


def test_headers_as_faust_hands_them_over() -> None:
    assert admitted(5, {"ceasefire-epoch": b"3"}, 4) == (False, 4)
    assert admitted(5, None, 4) == (True, 4)
