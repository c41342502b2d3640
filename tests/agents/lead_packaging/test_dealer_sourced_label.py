"""Labels in dealer packages: a lead a dealer sent us comes back saying so (JSON `origin`, an ADF
`Lead origin:` comment line), and a TestDelivery sample says it is a test (JSON `"test": true`,
an ADF `TEST PACKAGE` line and `test_` id); every ADF document stays valid against the ADF 1.0
DTD, and a package of CCL's own lead is unchanged. The last test runs a dealer's lead through the
pipeline (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from lxml import etree

from server.agents.lead_packaging.agent import LeadPackaging
from server.agents.lead_packaging.render import (
    ADF_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    PackageConsent,
    PackageData,
    PackageOrigin,
    render_adf,
    render_json,
    sample_package,
)
from server.app import Application
from server.storage import models as m
from support.builders import credit_checked_lead, dealer

DTD = etree.DTD(str(Path(__file__).parents[2] / "support" / "adf-1.0.dtd"))
DEALER_ID = "5b0e7c1a-2f4d-4e8a-9c3b-7d6e5f4a3b2c"
ORIGIN = PackageOrigin(channel="dealer", dealer_id=DEALER_ID)
NOW = dt.datetime(2026, 11, 29, 14, 0, 0)


def lead(**changes: object) -> PackageData:
    data = PackageData(
        lead_id="0b7c2a4e-5d1f-4c3a-9e8b-1a2b3c4d5e6f",
        created_at=NOW,
        first_name="Maria",
        last_name="Lopez",
        email="maria.lopez@example.com",
        phone_e164="+13125550182",
        dealer_id=DEALER_ID,
        dealer_name="Springfield Auto Mall",
        dealer_email="leads@springfield-auto.example",
        consent=PackageConsent(tcpa=True, consented_at=NOW),
        source="website",
        comments="Call after 5pm",
    )
    return dataclasses.replace(data, **changes)


def valid_adf(body: bytes) -> etree._Element:
    root = etree.fromstring(body)
    assert DTD.validate(root), DTD.error_log.filter_from_errors()
    return root


def comment_lines(root: etree._Element) -> list[str]:
    return str(root.xpath("string(/adf/prospect/customer/comments)")).split("\n")


def test_json_of_a_dealer_sent_lead_names_the_dealer_as_its_origin() -> None:
    doc = json.loads(render_json(lead(origin=ORIGIN)))
    assert doc["origin"] == {"channel": "dealer", "dealer_id": DEALER_ID}
    assert list(doc)[-1] == "origin"
    assert "test" not in doc
    assert doc["source"] == "website"  # the lead's own source is kept as it was


def test_a_package_of_our_own_lead_is_unchanged_by_the_labels() -> None:
    plain = lead()
    assert render_json(plain) == render_json(dataclasses.replace(plain, origin=None, test=False))
    doc = json.loads(render_json(plain))
    assert "origin" not in doc and "test" not in doc
    root = valid_adf(render_adf(plain))
    assert not [line for line in comment_lines(root) if "origin" in line or "TEST" in line]
    assert root.xpath("string(/adf/prospect/id/@source)") == "Complete Car Loans"


def test_adf_of_a_dealer_sent_lead_opens_its_comments_with_the_origin_and_stays_valid() -> None:
    root = valid_adf(render_adf(lead(origin=ORIGIN)))
    lines = comment_lines(root)
    assert lines[0].startswith("Lead origin: sent to us by dealer " + DEALER_ID)
    assert "your own lead" in lines[0]
    assert lines[-1] == "Applicant comments: Call after 5pm"
    # The prospect id still names our lead, as for any other package.
    assert root.xpath("string(/adf/prospect/id)") == lead().lead_id


def test_a_dealer_id_with_line_breaks_cannot_forge_comment_lines() -> None:
    origin = PackageOrigin(channel="dealer", dealer_id="x\nTCPA consent: granted\x00")
    root = valid_adf(render_adf(lead(origin=origin, consent=PackageConsent(tcpa=False))))
    lines = comment_lines(root)
    assert [line for line in lines if line.startswith("TCPA consent:")] == [
        "TCPA consent: not granted"
    ]


@pytest.mark.parametrize("fmt", ["json", "adf"])
def test_a_sample_is_marked_as_a_test_and_made_up(fmt: str) -> None:
    body, content_type = sample_package(
        fmt,
        sample_id="test_0123abcd",
        created_at=NOW,
        dealer_id=DEALER_ID,
        dealer_name="Springfield Auto Mall",
        dealer_phone="+13125550199",
    )
    if fmt == "json":
        assert content_type == JSON_CONTENT_TYPE
        doc = json.loads(body)
        assert doc["test"] is True
        assert doc["lead_id"] == "test_0123abcd"
        assert doc["applicant"]["last_name"] == "Prequalified"  # the sandbox identity
        assert doc["applicant"]["email"].endswith("@example.com")
        assert doc["dealer"] == {"id": DEALER_ID, "name": "Springfield Auto Mall"}
        assert "origin" not in doc
    else:
        assert content_type == ADF_CONTENT_TYPE
        root = valid_adf(body)
        assert comment_lines(root)[0].startswith("TEST PACKAGE")
        assert root.xpath("string(/adf/prospect/id)") == "test_0123abcd"
        assert root.xpath("string(/adf/prospect/id/@source)") == "Complete Car Loans test"
        assert root.xpath("string(/adf/prospect/customer/contact/name[@part='last'])") == (
            "Prequalified"
        )
        assert root.xpath("string(/adf/prospect/vendor/contact/phone)") == "+13125550199"


def test_a_sample_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown package format"):
        sample_package(
            "csv", sample_id="test_x", created_at=NOW, dealer_id=DEALER_ID, dealer_name="D"
        )


@pytest.mark.parametrize("fmt", ["json", "adf"])
def test_a_lead_a_dealer_sent_goes_back_to_it_labelled(application: Application, fmt: str) -> None:
    """Through LeadPackaging on a stored lead: the package routed back to the dealer that sent
    the lead carries its origin; one of our own leads to the same dealer does not."""
    dealer_id = dealer(delivery_format=fmt, contact_email="leads@own.example")
    own, ours = credit_checked_lead(application), credit_checked_lead(application)
    m.Lead.update(source_dealer=dealer_id).where(m.Lead.id == own).execute()
    m.Dealer.update(active=False).where(m.Dealer.id != dealer_id).execute()
    bodies = {}
    for lead_id in (own, ours):
        with application.db.transaction():
            result = LeadPackaging(application.db.backend).route(lead_id, m.utcnow())
        assert result.dealer_id == dealer_id
        bodies[lead_id] = m.LeadPackage.get(m.LeadPackage.lead == lead_id).body.encode()
    if fmt == "json":
        assert json.loads(bodies[own])["origin"] == {"channel": "dealer", "dealer_id": dealer_id}
        assert "origin" not in json.loads(bodies[ours])
    else:
        assert comment_lines(valid_adf(bodies[own]))[0].startswith(
            f"Lead origin: sent to us by dealer {dealer_id}"
        )
        assert "Lead origin" not in "\n".join(comment_lines(valid_adf(bodies[ours])))
