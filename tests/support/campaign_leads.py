"""Leads for campaign tests and `make bench`'s campaign phase, straight into the tables: what
intake would have stored (a lead with a granted TCPA consent, which is email consent), without
running the pipeline for each — the campaign, not intake, is what these measure."""

from __future__ import annotations

import datetime as dt

import peewee as pw

from server.storage import models as m


def seed_campaign_leads(
    db: pw.Database, addresses: list[str], state: str, *, per_insert: int = 500
) -> list[str]:
    """Inserts one lead per address (in `state`, an hour old) with its consent, `per_insert`
    rows an insert, in one transaction per chunk; returns the lead ids. The caller holds the
    connection."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
    ids: list[str] = []
    for start in range(0, len(addresses), per_insert):
        leads, consents = [], []
        for i in range(start, min(len(addresses), start + per_insert)):
            lead_id = str(m.new_id())
            ids.append(lead_id)
            leads.append(
                {
                    "id": lead_id,
                    "status": "unrouted",
                    "outcome": "accepted",
                    "source": "website",
                    "first_name": f"Pat{i}",
                    "last_name": "Doe",
                    "email": addresses[i],
                    "email_normalized": addresses[i].lower(),
                    "phone_e164": "+13075550100",
                    "date_of_birth": "1990-01-01",
                    "monthly_income_cents": "400000",
                    "street": "1 A St",
                    "city": "Cheyenne",
                    "state": state,
                    "zip_code": "82001",
                    "vehicle_year": 2020,
                    "vehicle_make": "Toyota",
                    "vehicle_model": "Camry",
                    "pipeline_stage": "done",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            consents.append(
                {
                    "lead": lead_id,
                    "kind": "tcpa",
                    "granted": True,
                    "consent_text": "I agree to be contacted",
                    "consented_at": now,
                }
            )
        with db.atomic():
            m.Lead.insert_many(leads).execute()
            m.LeadConsent.insert_many(consents).execute()
    return ids
