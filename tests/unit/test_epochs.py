"""A changelog read in order leaves out the records of a writer whose epoch ended at a later owner's
fence (services/runtime/fixes/epochs.py): what a worker cut off from the broker sends after the heal."""

from __future__ import annotations

from services.runtime.fixes.epochs import NO_FENCE, admitted, epoch_headers, gaps_between, owner_fence_headers

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


def test_a_gap_before_a_round_or_between_its_record_batches_is_found() -> None:
    """`gaps_between`: where a worker must look for another owner's fence after a round of writes."""
    last = {0: 10, 1: 20}
    assert gaps_between(last, [(0, 11, 15), (1, 21, 21)]) == {}
    assert last == {0: 15, 1: 21}
    # its first batch landed before a cut, its second after the heal, behind another worker's records
    assert gaps_between(last, [(0, 40, 41), (0, 16, 18)]) == {0: (19, 40)}
    assert last[0] == 41
    # records of others before the round and between its batches: one range from the first to the last
    assert gaps_between(last, [(0, 50, 50), (0, 60, 61)]) == {0: (42, 60)}
    # a partition not owned (a standby's, or none since the last assignment) is not checked
    assert gaps_between(last, [(3, 100, 101)]) == {}
    assert 3 not in last
