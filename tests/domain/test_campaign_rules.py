"""Campaign rules: unsubscribe tokens, quiet hours, the frequency cap, audiences and eligibility,
dedupe, the state machine, auto-pause, drip sequences."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain import campaigns as c
from server.domain.campaigns import (
    Audience,
    CampaignAction,
    CampaignState,
    CampaignStats,
    DripExit,
    DripStep,
    Exclusion,
    MessageKind,
    PauseReason,
    RecipientFacts,
)
from server.errors import FailedPreconditionError, InvalidArgumentError

KEY = b"k" * 32
OLD_KEY = b"o" * 32
UTC = dt.UTC


# --- Unsubscribe tokens ---------------------------------------------------------------------


def test_a_token_round_trips() -> None:
    token = c.sign_unsubscribe(KEY, "lead-123", "Jordan@Example.com")
    claim = c.verify_unsubscribe(KEY, token)
    assert claim is not None and claim.recipient_id == "lead-123"
    assert c.address_matches(KEY, claim, " jordan@example.COM ")
    assert not c.address_matches(KEY, claim, "someone@example.com")


def test_a_token_is_url_safe_and_does_not_carry_the_address() -> None:
    token = c.sign_unsubscribe(KEY, "lead-123", "jordan@example.com")
    assert all(ch.isalnum() or ch in "-_." for ch in token)
    assert "jordan" not in token.lower() and "example" not in token.lower()


@settings(max_examples=50, deadline=None)
@given(
    rid=st.text(min_size=1, max_size=64).filter(lambda s: len(s) <= 64),
    address=st.emails(),
    position=st.integers(min_value=0),
    replacement=st.sampled_from("AaZz09-_."),
)
def test_any_change_to_a_token_breaks_it(
    rid: str, address: str, position: int, replacement: str
) -> None:
    token = c.sign_unsubscribe(KEY, rid, address)
    claim = c.verify_unsubscribe(KEY, token)
    assert claim is not None and claim.recipient_id == rid
    i = position % len(token)
    tampered = token[:i] + replacement + token[i + 1 :]
    if tampered != token:
        # Base64's last character can carry unused bits; any other change must fail.
        result = c.verify_unsubscribe(KEY, tampered)
        assert result is None or result == claim


@pytest.mark.parametrize(
    "token",
    ["", "u1", "u1....", "u2.a.b.c.d", "x" * 600, "u1.a.b.c.d.e", "u1.!!.b.c.d"],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    assert c.verify_unsubscribe(KEY, token) is None


def test_a_token_from_another_key_is_refused() -> None:
    token = c.sign_unsubscribe(OLD_KEY, "lead-1", "a@example.com")
    assert c.verify_unsubscribe(KEY, token) is None


def test_keys_rotate_sign_with_the_first_verify_with_any() -> None:
    old_token = c.sign_unsubscribe([OLD_KEY], "lead-1", "a@example.com")
    keys = [KEY, OLD_KEY]
    new_token = c.sign_unsubscribe(keys, "lead-1", "a@example.com")
    assert new_token != old_token
    old_claim, new_claim = (
        c.verify_unsubscribe(keys, old_token),
        c.verify_unsubscribe(keys, new_token),
    )
    assert old_claim is not None and new_claim is not None
    assert c.address_matches(keys, old_claim, "a@example.com")
    assert c.address_matches(keys, new_claim, "a@example.com")
    assert c.verify_unsubscribe([KEY], old_token) is None  # once the old key is dropped


def test_the_recipient_id_cannot_be_swapped() -> None:
    a = c.sign_unsubscribe(KEY, "lead-1", "a@example.com").split(".")
    b = c.sign_unsubscribe(KEY, "lead-2", "a@example.com").split(".")
    assert c.verify_unsubscribe(KEY, ".".join([*a[:2], b[2], *a[3:]])) is None


def test_keys_must_be_long_enough_and_present() -> None:
    with pytest.raises(ValueError):
        c.sign_unsubscribe(b"short", "lead-1", "a@example.com")
    with pytest.raises(ValueError):
        c.verify_unsubscribe([], "u1.a.b.c.d")
    with pytest.raises(ValueError):
        c.sign_unsubscribe(KEY, "", "a@example.com")


# --- Quiet hours ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "zip_code", "zone"),
    [
        ("NY", "10001", "America/New_York"),
        ("il", "", "America/Chicago"),
        ("CO", "80202", "America/Denver"),
        ("AZ", "85001", "America/Phoenix"),
        ("CA", "94105", "America/Los_Angeles"),
        ("HI", "96813", "Pacific/Honolulu"),
        ("AK", "99501", "America/Anchorage"),
        ("FL", "33101", "America/New_York"),
        ("FL", "32501", "America/Chicago"),  # Pensacola
        ("TX", "75201", "America/Chicago"),
        ("TX", "79901", "America/Denver"),  # El Paso
        ("TN", "37203", "America/Chicago"),  # Nashville
        ("TN", "37902", "America/New_York"),  # Knoxville
        ("IN", "46204", "America/Indiana/Indianapolis"),
        ("IN", "46320", "America/Chicago"),  # Hammond
        ("ID", "83814", "America/Los_Angeles"),  # Coeur d'Alene
        ("OR", "97914", "America/Boise"),  # Ontario
        ("DC", "20001", "America/New_York"),
    ],
)
def test_time_zones_by_state_and_zip(state: str, zip_code: str, zone: str) -> None:
    assert c.time_zone_for(state, zip_code) == zone


def test_every_state_has_a_real_zone_and_unknown_states_have_none() -> None:
    from server.domain.validation import US_STATES

    assert set(c.STATE_TIME_ZONES) == set(US_STATES)
    for zone in {*c.STATE_TIME_ZONES.values()} | {
        z for zones in c._ZIP_ZONES.values() for z in zones.values()
    }:
        ZoneInfo(zone)
    assert c.time_zone_for("ZZ") is None and c.time_zone_for("") is None


@pytest.mark.parametrize(
    ("utc", "zone", "quiet"),
    [
        # 20:59 and 21:00 in New York on a winter day (UTC-5).
        (dt.datetime(2026, 1, 15, 1, 59), "America/New_York", False),
        (dt.datetime(2026, 1, 15, 2, 0), "America/New_York", True),
        # 07:59 and 08:00 in New York in summer (UTC-4).
        (dt.datetime(2026, 7, 15, 11, 59), "America/New_York", True),
        (dt.datetime(2026, 7, 15, 12, 0), "America/New_York", False),
        # The same instant is evening in Los Angeles and night in New York.
        (dt.datetime(2026, 7, 16, 3, 0), "America/Los_Angeles", False),
        (dt.datetime(2026, 7, 16, 3, 0), "America/New_York", True),
        # Phoenix keeps UTC-7 all year: 21:00 there is 04:00 UTC in both seasons.
        (dt.datetime(2026, 1, 15, 4, 0), "America/Phoenix", True),
        (dt.datetime(2026, 7, 15, 4, 0), "America/Phoenix", True),
        (dt.datetime(2026, 7, 15, 3, 59), "America/Phoenix", False),
        # Aware datetimes are accepted.
        (dt.datetime(2026, 1, 15, 2, 0, tzinfo=UTC), "America/New_York", True),
    ],
)
def test_in_quiet_hours(utc: dt.datetime, zone: str, quiet: bool) -> None:
    assert c.in_quiet_hours(utc, zone) is quiet


def test_quiet_hours_follow_dst() -> None:
    # 01:30 UTC is 20:30 EST on the Saturday before spring forward (2026-03-08) and 21:30
    # EDT the next evening.
    assert not c.in_quiet_hours(dt.datetime(2026, 3, 8, 1, 30), "America/New_York")
    assert c.in_quiet_hours(dt.datetime(2026, 3, 9, 1, 30), "America/New_York")


def test_next_send_time_is_now_outside_quiet_hours() -> None:
    now = dt.datetime(2026, 7, 15, 16, 0)
    assert c.next_send_time(now, "America/Chicago") == now


def test_next_send_time_in_the_evening_is_tomorrow_morning() -> None:
    # 22:00 CDT on 15 July is 03:00 UTC on 16 July; 08:00 CDT on 16 July is 13:00 UTC.
    assert c.next_send_time(dt.datetime(2026, 7, 16, 3, 0), "America/Chicago") == dt.datetime(
        2026, 7, 16, 13, 0
    )


def test_next_send_time_after_midnight_is_this_morning() -> None:
    # 02:00 CST is 08:00 UTC; quiet hours end at 08:00 CST = 14:00 UTC the same day.
    assert c.next_send_time(dt.datetime(2026, 1, 15, 8, 0), "America/Chicago") == dt.datetime(
        2026, 1, 15, 14, 0
    )


def test_next_send_time_across_dst_changes() -> None:
    # Spring forward (8 March 2026): 22:00 EST on the 7th; 08:00 EDT on the 8th is 12:00 UTC.
    assert c.next_send_time(dt.datetime(2026, 3, 8, 3, 0), "America/New_York") == dt.datetime(
        2026, 3, 8, 12, 0
    )
    # Fall back (1 November 2026): 22:00 EDT on 31 October; 08:00 EST on 1 Nov is 13:00 UTC.
    assert c.next_send_time(dt.datetime(2026, 11, 1, 2, 0), "America/New_York") == dt.datetime(
        2026, 11, 1, 13, 0
    )


def test_next_send_time_keeps_awareness() -> None:
    got = c.next_send_time(dt.datetime(2026, 7, 16, 3, 0, tzinfo=UTC), "America/Chicago")
    assert got == dt.datetime(2026, 7, 16, 13, 0, tzinfo=UTC) and got.tzinfo is not None


def test_a_window_that_skips_a_wall_time() -> None:
    # Quiet 01:00-02:30 on spring-forward night: 02:30 does not exist, the answer is the first
    # moment after it (03:00 EDT = 07:00 UTC).
    now = dt.datetime(2026, 3, 8, 6, 30)  # 01:30 EST
    got = c.next_send_time(now, "America/New_York", dt.time(1, 0), dt.time(2, 30))
    assert got > now
    assert not c.in_quiet_hours(got, "America/New_York", dt.time(1, 0), dt.time(2, 30))
    assert got <= dt.datetime(2026, 3, 8, 7, 0)


def test_equal_start_and_end_means_no_quiet_hours() -> None:
    assert not c.in_quiet_hours(dt.datetime(2026, 1, 1, 3), "UTC", dt.time(9), dt.time(9))


@settings(max_examples=200, deadline=None)
@given(
    now=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)),
    zone=st.sampled_from(sorted({*c.STATE_TIME_ZONES.values(), "UTC", "Australia/Lord_Howe"})),
)
def test_next_send_time_is_never_early_never_quiet_never_a_day_late(
    now: dt.datetime, zone: str
) -> None:
    got = c.next_send_time(now, zone)
    assert got >= now
    assert not c.in_quiet_hours(got, zone)
    assert got - now <= dt.timedelta(hours=12)


# --- Frequency cap ----------------------------------------------------------------------------

NOW = dt.datetime(2026, 5, 1, 12, 0)


def test_the_frequency_cap() -> None:
    assert c.may_send(None, NOW)
    assert not c.may_send(NOW - dt.timedelta(hours=23, minutes=59), NOW)
    assert c.may_send(NOW - dt.timedelta(hours=24), NOW)
    assert c.next_allowed(NOW - dt.timedelta(hours=20), NOW) == NOW + dt.timedelta(hours=4)
    assert c.next_allowed(NOW - dt.timedelta(days=3), NOW) == NOW
    assert not c.may_send(NOW - dt.timedelta(hours=5), NOW, cap=dt.timedelta(hours=6))


def test_transactional_mail_ignores_the_cap() -> None:
    just_now = NOW - dt.timedelta(minutes=1)
    assert c.may_send(just_now, NOW, kind=MessageKind.TRANSACTIONAL)
    assert c.next_allowed(just_now, NOW, kind=MessageKind.TRANSACTIONAL) == NOW


def test_the_cap_mixes_aware_and_naive() -> None:
    last = dt.datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    assert c.next_allowed(last, NOW) == dt.datetime(2026, 5, 2, 10, 0)


# --- Audience and eligibility ---------------------------------------------------------------


def test_a_valid_audience_is_normalised() -> None:
    got = c.validate_audience(
        Audience(
            statuses=frozenset({"LEAD_STATUS_DECLINED", "prequalified"}),
            credit_tiers=frozenset({"a", " B"}),
            states=frozenset({"tx", "CA "}),
            sources=frozenset({"Google-Ads"}),
            created_after=dt.datetime(2026, 1, 1),
            created_before=dt.datetime(2026, 2, 1),
        )
    )
    assert got.statuses == {"declined", "prequalified"}
    assert got.credit_tiers == {"A", "B"}
    assert got.states == {"TX", "CA"}
    assert got.sources == {"google-ads"}


def test_an_invalid_audience_has_one_violation_per_bad_field() -> None:
    with pytest.raises(InvalidArgumentError) as e:
        c.validate_audience(
            Audience(
                statuses=frozenset({"declined", "bogus", "LEAD_STATUS_NOPE"}),
                credit_tiers=frozenset({"A", "Z", "AA"}),
                states=frozenset({"TX", "XX", "ZZ"}),
                sources=frozenset({"ok", "not ok!"}),
                created_after=dt.datetime(2026, 2, 1),
                created_before=dt.datetime(2026, 1, 1),
                abandoned_after=dt.datetime(2026, 1, 1),
                abandoned_before=dt.datetime(2026, 1, 1),
            )
        )
    assert e.value.reason == "INVALID_AUDIENCE"
    fields = [v.field for v in e.value.violations]
    assert fields == [
        "campaign.audience.statuses",
        "campaign.audience.credit_tiers",
        "campaign.audience.states",
        "campaign.audience.sources",
        "campaign.audience.created_before",
        "campaign.audience.abandoned_before",
    ]
    assert "'XX'" in e.value.violations[2].description


FACTS = RecipientFacts(
    lead_id="l1",
    email_normalized="jordan@example.com",
    status="declined",
    credit_tier="C",
    state="TX",
    source="google",
    created_at=dt.datetime(2026, 1, 10),
    abandoned_at=dt.datetime(2026, 1, 11),
)
EVERYONE = Audience()


def test_suppressed_and_unconsented_leads_are_always_excluded() -> None:
    assert c.eligible(FACTS, EVERYONE, suppressed=False, has_email_consent=True) is None
    assert c.eligible(FACTS, EVERYONE, True, True) is Exclusion.SUPPRESSED
    assert c.eligible(FACTS, EVERYONE, False, False) is Exclusion.NO_EMAIL_CONSENT
    no_address = dataclasses.replace(FACTS, email_normalized="")
    assert c.eligible(no_address, EVERYONE, False, True) is Exclusion.NO_ADDRESS


@pytest.mark.parametrize(
    ("audience", "facts", "why"),
    [
        (Audience(statuses=frozenset({"prequalified"})), FACTS, Exclusion.STATUS),
        (Audience(credit_tiers=frozenset({"A", "B"})), FACTS, Exclusion.CREDIT_TIER),
        (Audience(states=frozenset({"CA"})), FACTS, Exclusion.STATE),
        (Audience(sources=frozenset({"facebook"})), FACTS, Exclusion.SOURCE),
        (
            Audience(created_after=dt.datetime(2026, 1, 10, 0, 0, 1)),
            FACTS,
            Exclusion.CREATED_OUT_OF_RANGE,
        ),
        (
            Audience(created_before=dt.datetime(2026, 1, 10)),  # half-open: before is excluded
            FACTS,
            Exclusion.CREATED_OUT_OF_RANGE,
        ),
        (
            Audience(abandoned_after=dt.datetime(2026, 1, 1)),
            dataclasses.replace(FACTS, abandoned_at=None),
            Exclusion.ABANDONED_OUT_OF_RANGE,
        ),
        (Audience(), dataclasses.replace(FACTS, converted=True), Exclusion.CONVERTED),
    ],
)
def test_audience_filters(audience: Audience, facts: RecipientFacts, why: Exclusion) -> None:
    assert c.eligible(facts, audience, False, True) is why


def test_matching_audiences_include_the_lead() -> None:
    audience = c.validate_audience(
        Audience(
            statuses=frozenset({"LEAD_STATUS_DECLINED"}),
            credit_tiers=frozenset({"c"}),
            states=frozenset({"tx"}),
            sources=frozenset({"google"}),
            created_after=dt.datetime(2026, 1, 10),
            created_before=dt.datetime(2026, 1, 11),
            abandoned_after=dt.datetime(2026, 1, 11),
            abandoned_before=dt.datetime(2026, 1, 12, tzinfo=UTC),
        )
    )
    assert c.eligible(FACTS, audience, False, True) is None
    converted = dataclasses.replace(FACTS, converted=True)
    keep = dataclasses.replace(audience, exclude_converted=False)
    assert c.eligible(converted, keep, False, True) is None


def test_dedupe_keeps_the_first_lead_per_address() -> None:
    leads = [
        dataclasses.replace(FACTS, lead_id="1", email_normalized="a@example.com"),
        dataclasses.replace(FACTS, lead_id="2", email_normalized="b@example.com"),
        dataclasses.replace(FACTS, lead_id="3", email_normalized=" A@Example.com"),
        dataclasses.replace(FACTS, lead_id="4", email_normalized=""),
        dataclasses.replace(FACTS, lead_id="5", email_normalized="b@example.com"),
    ]
    assert [r.lead_id for r in c.dedupe_by_address(leads)] == ["1", "2"]
    pairs = [("x", "A@x.com"), ("y", "a@x.com")]
    assert c.dedupe_by_address(pairs, lambda p: p[1]) == [("x", "A@x.com")]


def test_suppression_reasons() -> None:
    assert {r.value for r in c.SuppressionReason} == {
        "unsubscribed",
        "hard_bounce",
        "complaint",
        "manual",
    }


# --- State machine and auto-pause ---------------------------------------------------------


def test_the_campaign_life_cycle() -> None:
    s = CampaignState.DRAFT
    for action, expected in [
        (CampaignAction.SCHEDULE, CampaignState.SCHEDULED),
        (CampaignAction.START, CampaignState.RUNNING),
        (CampaignAction.PAUSE, CampaignState.PAUSED),
        (CampaignAction.RESUME, CampaignState.RUNNING),
        (CampaignAction.COMPLETE, CampaignState.COMPLETED),
    ]:
        s = c.apply_action(s, action)
        assert s is expected


@pytest.mark.parametrize("state", list(CampaignState))
def test_cancel_from_every_open_state_and_nothing_leaves_a_final_one(state: CampaignState) -> None:
    if state in c.FINAL_STATES:
        assert c.TRANSITIONS[state] == frozenset()
        for action in CampaignAction:
            with pytest.raises(FailedPreconditionError) as e:
                c.apply_action(state, action)
            assert e.value.reason == "INVALID_CAMPAIGN_TRANSITION"
    else:
        assert c.apply_action(state, CampaignAction.CANCEL) is CampaignState.CANCELLED


def test_final_states_and_invalid_moves() -> None:
    assert c.FINAL_STATES == {CampaignState.COMPLETED, CampaignState.CANCELLED}
    assert c.can_transition(CampaignState.PAUSED, CampaignState.RUNNING)
    assert not c.can_transition(CampaignState.DRAFT, CampaignState.PAUSED)
    assert not c.can_transition(CampaignState.PAUSED, CampaignState.COMPLETED)
    with pytest.raises(FailedPreconditionError):
        c.apply_action(CampaignState.DRAFT, CampaignAction.RESUME)


def test_auto_pause_needs_a_minimum_sample() -> None:
    # One complaint in three sends is 33%, but says nothing yet.
    assert c.should_pause(CampaignStats(sent=3, delivered=3, complained=1)) is None
    assert c.should_pause(CampaignStats(sent=499, delivered=499, complained=100)) is None
    assert c.should_pause(CampaignStats(sent=200, bounced=150)) is None


def test_auto_pause_on_complaints() -> None:
    # 0.3% of 1,000 delivered is 3: at 3 it holds, at 4 it pauses.
    assert c.should_pause(CampaignStats(sent=1000, delivered=1000, complained=3)) is None
    assert (
        c.should_pause(CampaignStats(sent=1000, delivered=1000, complained=4))
        is PauseReason.COMPLAINT_RATE
    )
    assert c.should_pause(CampaignStats(sent=500, delivered=500, complained=2)) == "COMPLAINT_RATE"


def test_auto_pause_on_hard_bounces() -> None:
    assert c.should_pause(CampaignStats(sent=1000, delivered=950, bounced=50)) is None
    assert (
        c.should_pause(CampaignStats(sent=1000, delivered=949, bounced=51))
        is PauseReason.HARD_BOUNCE_RATE
    )
    stricter = c.should_pause(
        CampaignStats(sent=100, delivered=98, bounced=2), hard_bounce_threshold=0.01, min_sample=100
    )
    assert stricter is PauseReason.HARD_BOUNCE_RATE


def test_auto_pause_on_consecutive_failures_at_any_size() -> None:
    assert c.should_pause(CampaignStats(consecutive_failures=19)) is None
    assert (
        c.should_pause(CampaignStats(consecutive_failures=20)) is PauseReason.CONSECUTIVE_FAILURES
    )
    assert c.should_pause(CampaignStats(consecutive_failures=3), consecutive_failures=3) == (
        "CONSECUTIVE_FAILURES"
    )


# --- Drip sequences --------------------------------------------------------------------------


def test_the_default_sequence_falls_due_1h_1d_3d_after_entry() -> None:
    steps = c.default_sequence(["t1", "t2", "t3"])
    entered = dt.datetime(2026, 4, 1, 9, 30)
    assert c.due_times(entered, steps) == [
        entered + dt.timedelta(hours=1),
        entered + dt.timedelta(days=1),
        entered + dt.timedelta(days=3),
    ]
    assert [s.template_id for s in steps] == ["t1", "t2", "t3"]
    c.validate_steps(steps)
    with pytest.raises(ValueError):
        c.default_sequence(["only one"])


def test_delays_are_step_to_step_like_the_proto() -> None:
    steps = [DripStep(dt.timedelta(minutes=30), "a"), DripStep(dt.timedelta(minutes=90), "b")]
    entered = dt.datetime(2026, 4, 1)
    assert c.due_times(entered, steps) == [
        dt.datetime(2026, 4, 1, 0, 30),
        dt.datetime(2026, 4, 1, 2, 0),
    ]
    assert c.due_times(entered, []) == []


def test_invalid_steps_have_one_violation_per_bad_field() -> None:
    with pytest.raises(InvalidArgumentError) as e:
        c.validate_steps(
            [
                DripStep(dt.timedelta(hours=1), "ok"),
                DripStep(dt.timedelta(minutes=-1), ""),
                DripStep(dt.timedelta(days=91), "t"),
            ]
        )
    assert e.value.reason == "INVALID_DRIP_STEPS"
    assert [v.field for v in e.value.violations] == [
        "campaign.steps[1].template_id",
        "campaign.steps[1].delay_minutes",
        "campaign.steps[2].delay_minutes",
    ]
    with pytest.raises(InvalidArgumentError):
        c.validate_steps([])
    with pytest.raises(InvalidArgumentError):
        c.validate_steps([DripStep(dt.timedelta(hours=1), "t")] * (c.MAX_DRIP_STEPS + 1))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=60 * 24 * 90), max_size=20))
def test_due_times_never_go_backwards(delays: list[int]) -> None:
    steps = [DripStep(dt.timedelta(minutes=m), "t") for m in delays]
    times = c.due_times(NOW, steps)
    assert times == sorted(times) and all(t >= NOW for t in times)
    if times:
        assert times[-1] - NOW == dt.timedelta(minutes=sum(delays))


def test_drip_exits() -> None:
    carry_on = {"converted": False, "suppressed": False, "steps_sent": 1, "total_steps": 3}
    assert c.drip_exit(**carry_on) is None  # type: ignore[arg-type]
    assert c.drip_exit(**{**carry_on, "converted": True}) is DripExit.CONVERTED  # type: ignore[arg-type]
    assert c.drip_exit(**{**carry_on, "suppressed": True}) is DripExit.UNSUBSCRIBED  # type: ignore[arg-type]
    assert c.drip_exit(**{**carry_on, "steps_sent": 3}) is DripExit.COMPLETED  # type: ignore[arg-type]
    # Unsubscribing wins over converting: both stop the sequence, the unsubscribe is recorded.
    both = {**carry_on, "converted": True, "suppressed": True}
    assert c.drip_exit(**both) is DripExit.UNSUBSCRIBED  # type: ignore[arg-type]
