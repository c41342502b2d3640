"""The lead pipeline end to end through real Envoy: intake, simulated credit check, routing,
a signed ADF package delivered to a fake dealer CRM over loopback (retried through 500s), and
the dealer's signed webhook moving the lead on. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from server.domain.principal import Role
from support.data import example_request
from support.fake_crm import FakeCrm, running
from support.stack import EnvoyProcess, ServerThread, make_settings
from support.webhook_signing import signed_headers, whsec

pytestmark = pytest.mark.e2e
SECRET_A = whsec("dealer-a-secret-0123456789")
SECRET_B = whsec("dealer-b-secret-0123456789")


@pytest.fixture(scope="module")
def crm(backend: str) -> Iterator[tuple[FakeCrm, str]]:  # one per backend run
    fake = FakeCrm(secret=SECRET_A, script=[500, 500, 200])
    with running(fake) as url:
        yield fake, url


@pytest.fixture(scope="module")
def server(db_url: str) -> Iterator[ServerThread]:
    settings = make_settings(
        db_url,
        delivery_backoff_base_seconds=0.05,
        delivery_backoff_max_seconds=0.2,
        worker_poll_seconds=0.05,
        delivery_max_attempts=4,
    )
    stack = ServerThread(settings).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def proxy(server: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    envoy = EnvoyProcess([server.port], Path(tmp_path_factory.mktemp("envoy"))).start()
    yield envoy
    envoy.stop()


@pytest.fixture(scope="module")
def admin(server: ServerThread, proxy: EnvoyProcess) -> Iterator[httpx.Client]:
    key = server.create_key(Role.ADMIN)
    with httpx.Client(
        base_url=proxy.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=20
    ) as client:
        yield client


@pytest.fixture(scope="module")
def dealers(admin: httpx.Client, crm: tuple[FakeCrm, str], server: ServerThread) -> dict[str, dict]:  # type: ignore[type-arg]
    """Dealer A serves Illinois in ADF via the fake CRM; dealer B serves Texas only."""
    _, url = crm
    a = admin.post(
        "/api/dealers",
        json={
            "name": "Springfield Auto",
            "states": ["IL"],
            "accepted_tiers": ["A", "B", "C"],
            "daily_cap": 50,
            "priority": 10,
            "weight": 1,
            "endpoint_url": url,
            "delivery_format": "DELIVERY_FORMAT_ADF",
            "contact_email": "Leads@Springfield-Auto.example",
            "signing_secret": SECRET_A,
            "active": True,
        },
    )
    assert a.status_code == 200, a.text
    b = admin.post(
        "/api/dealers",
        json={
            "name": "Austin Motors",
            "states": ["TX"],
            "endpoint_url": url + "/b",
            "signing_secret": SECRET_B,
            "active": True,
        },
    )
    assert b.status_code == 200, b.text
    out = {}
    for name, response in (("A", a), ("B", b)):
        dealer = response.json()["dealer"]
        assert "signing_secret" not in dealer or dealer["signing_secret"] == ""
        out[name] = {
            "id": dealer["dealer_id"],
            "key": server.create_key(Role.DEALER, dealer["dealer_id"]),
        }
    return out


def signed(body: bytes, secret: str, ts: int | None = None) -> dict[str, str]:
    """Signed as a dealer does (a wrong secret given as text stands for a wrong key)."""
    return signed_headers(body, secret if secret.startswith("whsec_") else whsec(secret), ts)


def wait_for_state(admin: httpx.Client, lead_id: str, state: str, timeout: float = 15) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        lead = admin.get(f"/api/leads/{lead_id}").json()["lead"]
        if lead["delivery_state"] == state:
            return lead  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, lead
        time.sleep(0.05)


@pytest.fixture(scope="module")
def delivered(admin: httpx.Client, dealers: dict, crm: tuple[FakeCrm, str]) -> dict:  # type: ignore[type-arg]
    """The issue's example request, posted through Envoy, delivered after two 500s."""
    r = admin.post("/api/leads/process", json=example_request())
    assert r.status_code == 200, r.text
    body = r.json()
    fake, _ = crm
    fake.wait_for(3)
    lead = wait_for_state(admin, body["lead"]["lead_id"], "DELIVERY_STATE_DELIVERED")
    return {"response": body, "lead": lead}


def test_example_is_prequalified_and_routed_to_its_dealer(delivered: dict, dealers: dict) -> None:  # type: ignore[type-arg]
    response = delivered["response"]
    assert response["outcome"] == "LEAD_OUTCOME_ACCEPTED"
    lead = response["lead"]
    assert lead["credit"]["decision"] in {
        "CREDIT_DECISION_PREQUALIFIED",
        "CREDIT_DECISION_DECLINED",
    }
    assert lead["credit"]["source"] == "CREDIT_SOURCE_SIMULATED"
    assert lead["dealer_id"] == dealers["A"]["id"]
    assert lead["status"] == "LEAD_STATUS_PACKAGED"
    assert 0 < lead["score"] <= 100
    assert response["identity"]["identity_id"] and response["identity"]["new_identity"]


def test_crm_receives_the_signed_adf_exactly_once_after_two_500s(
    delivered: dict,
    crm: tuple[FakeCrm, str],
    admin: httpx.Client,  # type: ignore[type-arg]
) -> None:
    fake, _ = crm
    time.sleep(0.3)  # nothing more may arrive after the success
    assert [r.status for r in fake.received] == [500, 500, 200]
    assert len(fake.accepted) == 1
    assert all(r.signature_ok for r in fake.received)
    event_ids = {r.headers["webhook-id"] for r in fake.received}
    assert len(event_ids) == 1, "every attempt carries the same event id"
    assert {r.headers["idempotency-key"] for r in fake.received} == event_ids
    document = etree.fromstring(fake.accepted[0].body)
    assert document.tag == "adf"
    assert document.findtext("prospect/id") == delivered["lead"]["lead_id"]
    assert document.findtext("prospect/customer/contact/name[@part='last']") == "Lopez"
    assert fake.accepted[0].headers["content-type"].startswith("application/xml")
    assert b"1990-04-12" not in fake.accepted[0].body  # no date of birth for dealers
    # The vendor contact is the dealer's own (normalised), as the ADF 1.0 DTD requires.
    assert document.findtext("prospect/vendor/contact/email") == "leads@springfield-auto.example"

    deliveries = admin.get(f"/api/leads/{delivered['lead']['lead_id']}/deliveries").json()[
        "deliveries"
    ]
    assert len(deliveries) == 1
    d = deliveries[0]
    assert d["state"] == "DELIVERY_STATE_DELIVERED"
    assert [a["status_code"] for a in d["attempts"]] == [500, 500, 200]
    packages = admin.get(f"/api/leads/{delivered['lead']['lead_id']}/packages").json()["packages"]
    assert packages[0]["format"] == "PACKAGE_FORMAT_ADF"
    assert packages[0]["body"].startswith('<?xml version="1.0" encoding="UTF-8"?>')


def test_dealer_webhook_moves_its_lead_to_sold(
    delivered: dict,
    dealers: dict,
    proxy: EnvoyProcess,
    admin: httpx.Client,  # type: ignore[type-arg]
) -> None:
    lead_id = delivered["lead"]["lead_id"]
    body = json.dumps(
        {
            "events": [
                {
                    "event_id": "evt-contacted",
                    "type": "status",
                    "lead_id": lead_id,
                    "status": "contacted",
                },
                {"event_id": "evt-sold", "type": "status", "lead_id": lead_id, "status": "sold"},
            ]
        }
    ).encode()
    headers = {"Authorization": f"Bearer {dealers['A']['key']}", **signed(body, SECRET_A)}
    r = httpx.post(f"{proxy.base_url}/api/webhook/dealer-leads", content=body, headers=headers)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["EVENT_RESULT_STATUS_ACCEPTED"] * 2
    assert admin.get(f"/api/leads/{lead_id}").json()["lead"]["status"] == "LEAD_STATUS_SOLD"

    again = httpx.post(f"{proxy.base_url}/api/webhook/dealer-leads", content=body, headers=headers)
    assert again.json()["results"] == [
        {
            "event_id": x["event_id"],
            "status": "EVENT_RESULT_STATUS_ALREADY_RECEIVED",
            "reason": "",
            "lead_id": lead_id,
        }
        for x in results
    ]


def test_every_step_shows_in_the_activity_log(delivered: dict, admin: httpx.Client) -> None:  # type: ignore[type-arg]
    lead_id = delivered["lead"]["lead_id"]
    kinds: list[str] = []
    token = ""
    while True:
        page = admin.get(
            f"/api/leads/{lead_id}/activity", params={"page_size": 5, "page_token": token}
        ).json()
        kinds += [a["kind"] for a in page["activities"]]
        token = page["next_page_token"]
        if not token:
            break
    for step in (
        "lead.received",
        "lead.validated",
        "identity.created",
        "credit.checked",
        "lead.scored",
        "lead.routed",
        "package.created",
        "delivery.queued",
        "delivery.retry_scheduled",
        "delivery.delivered",
    ):
        assert step in kinds, step
    assert kinds.count("delivery.attempted") == 3
    assert (
        kinds.index("credit.checked")
        < kinds.index("lead.routed")
        < kinds.index("delivery.delivered")
    )


def test_webhook_rejects_bad_signature_old_timestamp_and_other_dealers(
    delivered: dict,
    dealers: dict,
    proxy: EnvoyProcess,  # type: ignore[type-arg]
) -> None:
    lead_id = delivered["lead"]["lead_id"]
    body = json.dumps(
        {"events": [{"event_id": "evt-x", "type": "status", "lead_id": lead_id, "status": "lost"}]}
    ).encode()
    url = f"{proxy.base_url}/api/webhook/dealer-leads"
    key_a = {"Authorization": f"Bearer {dealers['A']['key']}"}

    wrong_secret = httpx.post(
        url, content=body, headers={**key_a, **signed(body, "not-the-secret-at-all")}
    )
    assert wrong_secret.status_code == 401
    assert "SIGNATURE_INVALID" in wrong_secret.text
    tampered = httpx.post(
        url, content=body.replace(b"lost", b"sold"), headers={**key_a, **signed(body, SECRET_A)}
    )
    assert tampered.status_code == 401
    replay = httpx.post(
        url, content=body, headers={**key_a, **signed(body, SECRET_A, int(time.time()) - 3600)}
    )
    assert replay.status_code == 401
    assert "TIMESTAMP_OUT_OF_RANGE" in replay.text

    key_b = {"Authorization": f"Bearer {dealers['B']['key']}"}
    other = httpx.post(url, content=body, headers={**key_b, **signed(body, SECRET_B)})
    assert other.status_code == 200
    result = other.json()["results"][0]
    assert result["status"] == "EVENT_RESULT_STATUS_REJECTED"
    assert result["reason"].startswith("LEAD_NOT_FOUND")
    assert httpx.get(f"{proxy.base_url}/api/leads/{lead_id}", headers=key_b).status_code == 404


def test_one_bad_event_does_not_sink_the_batch(
    dealers: dict, proxy: EnvoyProcess, admin: httpx.Client
) -> None:  # type: ignore[type-arg]
    new_lead = example_request(email="dealer.sourced@example.com", phone="(312) 555-0150")["lead"]
    body = json.dumps(
        {
            "events": [
                {"event_id": "evt-new-1", "type": "lead", "lead": new_lead},
                {"event_id": "evt-bad-1", "type": "lead", "lead": {**new_lead, "email": "nope"}},
                {"event_id": "evt-bad-2", "type": "status", "lead_id": "x", "status": "teleported"},
                {"type": "status"},
                {"event_id": "evt-nul", "type": "status", "lead_id": "a\u0000b", "status": "sold"},
                {
                    "event_id": "evt-nul-lead",
                    "type": "lead",
                    "lead": {**new_lead, "city": "Spr\u0000ing"},
                },
            ]
        }
    ).encode()
    headers = {"Authorization": f"Bearer {dealers['A']['key']}", **signed(body, SECRET_A)}
    r = httpx.post(f"{proxy.base_url}/api/webhook/dealer-leads", content=body, headers=headers)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"].removeprefix("EVENT_RESULT_STATUS_") for x in results] == [
        "ACCEPTED",
        "REJECTED",
        "REJECTED",
        "REJECTED",
        "REJECTED",
        "REJECTED",
    ]
    assert "lead.email" in results[1]["reason"]
    lead = admin.get(f"/api/leads/{results[0]['lead_id']}").json()["lead"]
    assert lead["source_dealer_id"] == dealers["A"]["id"]
    assert lead["dealer_id"] == dealers["A"]["id"], "a dealer's own lead goes back to it only"


def test_duplicate_lead_is_linked_and_not_delivered(
    delivered: dict,
    admin: httpx.Client,
    crm: tuple[FakeCrm, str],  # type: ignore[type-arg]
) -> None:
    fake, _ = crm
    again = example_request(phone="(312) 555-0199")  # same email, new key, new phone
    again["idempotency_key"] = "web-dup-1"
    r = admin.post("/api/leads/process", json=again)
    assert r.status_code == 200
    body = r.json()
    assert body["outcome"] == "LEAD_OUTCOME_DUPLICATE"
    assert body["lead"]["duplicate_of_lead_id"] == delivered["lead"]["lead_id"]
    assert body["lead"]["status"] == "LEAD_STATUS_DUPLICATE"
    assert body["returning_applicant"] is True
    assert body["identity"]["identity_id"] == delivered["response"]["identity"]["identity_id"]
    time.sleep(0.3)
    duplicate_id = body["lead"]["lead_id"].encode()
    assert not [r for r in fake.received if duplicate_id in r.body], (
        "a duplicate is never delivered"
    )


def test_dealer_admin_validates_every_field(admin: httpx.Client) -> None:
    r = admin.post(
        "/api/dealers",
        json={
            "name": "",
            "states": ["ZZ"],
            "zip_prefixes": ["6a"],
            "accepted_tiers": ["Q"],
            "weight": 0,
            "endpoint_url": "ftp://x",
            "signing_secret": "short",
        },
    )
    assert r.status_code == 400
    fields = {
        v["field"]
        for d in r.json()["details"]
        if d["@type"].endswith("BadRequest")
        for v in d["field_violations"]
    }
    assert fields == {
        "dealer.name",
        "dealer.states",
        "dealer.zip_prefixes",
        "dealer.accepted_tiers",
        "dealer.weight",
        "dealer.endpoint_url",
        "dealer.signing_secret",
    }


def test_visitor_tracking_stitches_then_recognises_the_applicant(admin: httpx.Client) -> None:
    anon = "anon-track-1"
    first = admin.post(
        "/api/visitors/track",
        json={
            "anonymous_id": anon,
            "event_type": "VISITOR_EVENT_TYPE_PAGE_VIEW",
            "page": {"url": "https://completecarloans.com/"},
        },
    )
    assert first.status_code == 200, first.text
    assert first.json()["returning_visitor"] is False
    typed = admin.post(
        "/api/visitors/track",
        json={
            "anonymous_id": anon,
            "event_type": "VISITOR_EVENT_TYPE_IDENTIFY",
            "email": "Track.Me@Example.com",
        },
    )
    assert typed.json()["returning_visitor"] is True
    identity = typed.json()["identity_id"]
    assert identity
    lead = example_request(email="track.me@example.com", phone="(312) 555-0161", visitor_id=anon)
    lead["idempotency_key"] = "track-lead-1"
    r = admin.post("/api/leads/process", json=lead).json()
    assert r["identity"]["identity_id"] == identity
    assert r["identity"]["matched_by"] == "email"
    assert r["returning_applicant"] is True


def test_global_privacy_control_records_without_stitching(admin: httpx.Client) -> None:
    r = admin.post(
        "/api/visitors/track",
        json={
            "anonymous_id": "anon-gpc",
            "event_type": "VISITOR_EVENT_TYPE_IDENTIFY",
            "email": "private.person@example.com",
        },
        headers={"Sec-GPC": "1"},
    )
    assert r.status_code == 200
    assert r.json()["privacy_opt_out"] is True
    assert r.json()["identity_id"] == ""


def test_redeliver_after_rejection(admin: httpx.Client) -> None:
    """A dealer of its own (Nevada), so no other test's retrying delivery reaches its CRM."""
    rejecting = FakeCrm(secret=SECRET_A, script=[422, 200])
    with running(rejecting) as url:
        created = admin.post(
            "/api/dealers",
            json={
                "name": "Reno Motors",
                "states": ["NV"],
                "endpoint_url": "http://127.0.0.1:9/x",
                "signing_secret": SECRET_A,
            },
        )
        dealer_id = created.json()["dealer"]["dealer_id"]
        patched = admin.patch(
            f"/api/dealers/{dealer_id}",
            json={"endpoint_url": url},
            params={"update_mask": "endpoint_url"},
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["dealer"]["endpoint_url"] == url
        lead = example_request(
            email="redeliver@example.com",
            phone="(702) 555-0171",
            address={"street": "1 Virginia St", "city": "Reno", "state": "NV", "zip_code": "89501"},
        )
        lead["idempotency_key"] = "redeliver-1"
        lead_id = admin.post("/api/leads/process", json=lead).json()["lead"]["lead_id"]
        rejected = wait_for_state(admin, lead_id, "DELIVERY_STATE_REJECTED")
        assert rejected["status"] == "LEAD_STATUS_DELIVERY_FAILED"
        assert rejected["dealer_id"] == dealer_id
        delivery = admin.get(f"/api/leads/{lead_id}/deliveries").json()["deliveries"][0]
        assert "422" in delivery["last_error"]
        again = admin.post(f"/api/deliveries/{delivery['delivery_id']}:redeliver", json={})
        assert again.status_code == 200, again.text
        wait_for_state(admin, lead_id, "DELIVERY_STATE_DELIVERED")
        assert [r.status for r in rejecting.received] == [422, 200]


def test_hostile_webhook_input_is_a_clean_4xx(dealers: dict, proxy: EnvoyProcess) -> None:  # type: ignore[type-arg]
    url = f"{proxy.base_url}/api/webhook/dealer-leads"
    key = {"Authorization": f"Bearer {dealers['A']['key']}"}
    body = b'{"events": []}'
    huge = "1" + "0" * 400
    huge_ts = {**key, **signed(body, SECRET_A), "x-ccl-timestamp": huge, "webhook-timestamp": huge}
    assert httpx.post(url, content=body, headers=huge_ts).status_code == 401
    accented = {**key, **signed(body, SECRET_A)}
    accented["x-ccl-signature"] = "sha256=\u00e9".encode().decode("unicode_escape")
    accented["webhook-signature"] = "v1,\u00e9".encode().decode("unicode_escape")
    response = httpx.post(
        url, content=body, headers={k: v.encode("latin-1") for k, v in accented.items()}
    )
    assert response.status_code == 401
    deep = b"[" * 50_000
    r = httpx.post(url, content=deep, headers={**key, **signed(deep, SECRET_A)})
    assert r.status_code == 400 and "INVALID_WEBHOOK_BODY" in r.text


def test_out_of_range_client_times_are_handled(admin: httpx.Client) -> None:
    r = admin.post(
        "/api/visitors/track",
        json={
            "anonymous_id": "anon-clock",
            "event_type": "VISITOR_EVENT_TYPE_PAGE_VIEW",
            "client_time": "9999-12-31T00:00:00Z",
            "sent_time": "0001-01-01T00:00:00Z",
        },
    )
    assert r.status_code == 200, r.text
    future = example_request()
    future["idempotency_key"] = "future-consent"
    future["lead"]["consent"]["consented_time"] = "2999-01-01T00:00:00Z"
    bad = admin.post("/api/leads/process", json=future)
    assert bad.status_code == 400 and "lead.consent.consented_time" in bad.text


def test_unusable_endpoint_url_is_refused(admin: httpx.Client) -> None:
    r = admin.post("/api/dealers", json={"name": "Broken", "endpoint_url": "http://[::1/leads"})
    assert r.status_code == 400 and "dealer.endpoint_url" in r.text


def test_dealer_sees_no_identity_links_and_statuses_move_forward_only(
    delivered: dict,
    dealers: dict,
    proxy: EnvoyProcess,
    admin: httpx.Client,  # type: ignore[type-arg]
) -> None:
    lead_id = delivered["lead"]["lead_id"]
    key = {"Authorization": f"Bearer {dealers['A']['key']}"}
    seen = httpx.get(f"{proxy.base_url}/api/leads/{lead_id}", headers=key).json()["lead"]
    assert seen["identity_id"] == "" and seen["duplicate_of_lead_id"] == ""
    activity = httpx.get(f"{proxy.base_url}/api/leads/{lead_id}/activity", headers=key).json()
    assert not [a for a in activity["activities"] if a["agent"] == "AGENT_VISITOR_IDENTIFIER"]
    probe = example_request(phone="(312) 555-0198")
    probe["idempotency_key"] = "dealer-probe"
    answer = httpx.post(f"{proxy.base_url}/api/leads/process", json=probe, headers=key).json()
    assert answer["outcome"] == "LEAD_OUTCOME_DUPLICATE"
    assert answer["lead"]["duplicate_of_lead_id"] == "" and answer["identity"]["identity_id"] == ""
    assert answer["returning_applicant"] is False

    url = f"{proxy.base_url}/api/webhook/dealer-leads"
    sold = json.dumps(
        {
            "events": [
                {"event_id": "evt-sold", "type": "status", "lead_id": lead_id, "status": "sold"}
            ]
        }
    ).encode()
    httpx.post(url, content=sold, headers={**key, **signed(sold, SECRET_A)})  # new or a duplicate
    assert admin.get(f"/api/leads/{lead_id}").json()["lead"]["status"] == "LEAD_STATUS_SOLD"
    back = json.dumps(
        {
            "events": [
                {
                    "event_id": "evt-back",
                    "type": "status",
                    "lead_id": lead_id,
                    "status": "contacted",
                }
            ]
        }
    ).encode()
    r = httpx.post(url, content=back, headers={**key, **signed(back, SECRET_A)})
    assert r.json()["results"][0]["reason"].startswith("INVALID_TRANSITION")
    assert admin.get(f"/api/leads/{lead_id}").json()["lead"]["status"] == "LEAD_STATUS_SOLD"


def test_deactivated_dealer_key_stops_working(
    admin: httpx.Client, server: ServerThread, proxy: EnvoyProcess
) -> None:
    created = admin.post("/api/dealers", json={"name": "Leaving Motors", "states": ["IL"]}).json()
    dealer_id = created["dealer"]["dealer_id"]
    key = {"Authorization": f"Bearer {server.create_key(Role.DEALER, dealer_id)}"}
    assert httpx.get(f"{proxy.base_url}/api/leads", headers=key).status_code == 200
    off = admin.patch(
        f"/api/dealers/{dealer_id}", json={"active": False}, params={"update_mask": "active"}
    )
    assert off.status_code == 200, off.text
    assert httpx.get(f"{proxy.base_url}/api/leads", headers=key).status_code == 401


def test_unrouted_lead_is_visible_and_routed_again(
    admin: httpx.Client,
    crm: tuple[FakeCrm, str],
    dealers: dict,  # type: ignore[type-arg]
) -> None:
    lead = example_request(
        email="wisconsin@example.com",
        phone="(608) 555-0142",
        address={"street": "1 Lake St", "city": "Madison", "state": "WI", "zip_code": "53703"},
    )
    lead["idempotency_key"] = "wi-1"
    body = admin.post("/api/leads/process", json=lead).json()
    lead_id = body["lead"]["lead_id"]
    assert body["lead"]["status"] == "LEAD_STATUS_UNROUTED"
    stats = admin.get("/api/system/stats").json()
    by_status = {c["name"]: int(c["count"]) for c in stats["leads_by_status"]}
    assert by_status["LEAD_STATUS_UNROUTED"] >= 1
    assert admin.post(f"/api/leads/{dealers['A']['id']}:route", json={}).status_code == 404
    _, url = crm
    created = admin.post(
        "/api/dealers",
        json={
            "name": "Madison Cars",
            "states": ["WI"],
            "endpoint_url": url,
            "signing_secret": SECRET_A,
        },
    )
    assert created.status_code == 200
    routed = admin.post(f"/api/leads/{lead_id}:route", json={})
    assert routed.status_code == 200, routed.text
    assert routed.json()["lead"]["dealer_id"] == created.json()["dealer"]["dealer_id"]
    assert routed.json()["lead"]["status"] == "LEAD_STATUS_PACKAGED"
    again = admin.post(f"/api/leads/{lead_id}:route", json={})
    assert again.status_code == 400 and "LEAD_NOT_UNROUTED" in again.text
