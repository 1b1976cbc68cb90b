"""The phases of a desktop start, read from the pod and its Events, and the next start's kind."""

from __future__ import annotations

from datetime import UTC, datetime

from streamspace.domain.starts import StartRecord, predicted_kind, start_record

SESSION = {"metadata": {"name": "s", "creationTimestamp": "2026-01-01T10:00:00Z"}}
OBSERVED = datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC)


def _pod(created: str = "2026-01-01T10:00:01Z") -> dict:
    return {"metadata": {"name": "p", "creationTimestamp": created}, "status": {
        "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T10:00:02Z"},
                       {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T10:00:14Z"}],
        "containerStatuses": [{"state": {"running": {"startedAt": "2026-01-01T10:00:13Z"}}}]}}


def _pulled(message: str, at: str = "2026-01-01T10:00:10Z") -> dict:
    return {"reason": "Pulled", "message": message, "lastTimestamp": at}


def test_a_cold_start_reads_every_phase_from_the_request():
    events = [{"reason": "Scheduled", "message": "x"},
              _pulled('Successfully pulled image "example.org/desk:1" in 8s')]
    assert start_record(SESSION, _pod(), events, warm=False, waking=False, observed_at=OBSERVED) == \
        StartRecord("cold", 14.0, 2.0, 10.0, 13.0)


def test_a_start_whose_images_were_present_is_cached_and_one_without_events_unknown():
    present = [_pulled('Container image "example.org/desk:1" already present on machine', "2026-01-01T10:00:03Z")]
    assert start_record(SESSION, _pod(), present, warm=False, waking=False, observed_at=OBSERVED).kind == "cached"
    assert start_record(SESSION, _pod(), [], warm=False, waking=False, observed_at=OBSERVED).kind == "unknown"


def test_a_warm_claim_is_ready_when_seen_and_a_wake_counts_from_its_new_pod():
    assert start_record(SESSION, _pod("2025-12-31T09:00:00Z"), [], warm=True, waking=False,
                        observed_at=datetime(2026, 1, 1, 10, 0, 1, 500000, tzinfo=UTC)) == StartRecord("warm", 1.5)
    woken = start_record(SESSION, _pod("2026-01-01T10:00:10Z"), [_pulled("already present on machine")],
                         warm=False, waking=True, observed_at=OBSERVED)
    assert woken is not None and woken.ready_seconds == 4.0 and woken.scheduled_seconds == 0.0


def test_unreadable_times_record_nothing():
    assert start_record({"metadata": {}}, _pod(), [], warm=False, waking=False, observed_at=OBSERVED) is None


def test_the_next_start_is_warm_when_claimed_cached_when_the_image_is_likely_there():
    assert predicted_kind(True, False, {}) == "warm"
    assert predicted_kind(False, True, {}) == "cached"
    assert predicted_kind(False, False, {"cold": 1}) == "cached"
    assert predicted_kind(False, False, {"warm": 5}) == "cold"
