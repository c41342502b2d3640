"""Personalised opening lines on both backends: the real OpenAI client (through
`OpenAICopywriter`) against the fake OpenAI writes each recipient's line of a template that prints
`{{ opening_line }}`, from their first name and vehicle only; a recipient it fails for gets the
template engine's line, and each message records which engine wrote it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from server.adapters.mailgun import MailgunClient
from server.adapters.openai_copy import OpenAICopywriter
from server.agents.email_reengagement import EmailDispatcher
from server.app import Application
from server.domain.campaigns import CampaignState
from server.domain.templates import TemplateSpec, default_opening_line
from server.services.campaigns import Sender
from server.storage import models as m
from server.storage.campaigns import CampaignRepository, TemplateRepository
from support.builders import received_lead
from support.fake_mailgun import FakeMailgun
from support.fake_openai import FakeOpenAI

DAY = dt.datetime(2026, 11, 2, 19, 0, 0)
SENDER = Sender(
    company_name="Sample Lending LLC",
    company_address="100 Main St, Springfield, IL 62701",
    public_base_url="https://apply.example.com",
)
SPEC = TemplateSpec(
    name="Opening",
    subject="{{ first_name }}, finish your application",
    html="<p>{{ opening_line }}</p><p><a href='{{ application_url }}'>Resume</a></p>",
    text="{{ opening_line }}\nResume at {{ application_url }}",
)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeMailgun, FakeOpenAI]]:
    with FakeMailgun() as mailgun, FakeOpenAI() as openai:
        yield mailgun, openai


async def test_each_recipient_gets_a_line_and_the_engine_is_recorded(
    application: Application, servers: tuple[FakeMailgun, FakeOpenAI]
) -> None:
    mailgun, openai = servers
    mailgun.reset()
    openai.reset()
    leads = [
        received_lead(application, first_name=name, vehicle={"year": 2020, "make": "Kia"})
        for name in ("Ana", "Ben", "Cy")
    ]
    # The line written for one recipient is refused (a link): theirs is the template's line.
    openai.answer = lambda body: (
        "Visit https://example.test now"
        if "Cy" in json.dumps(body)
        else f"Hi {body['messages'][-1]['content'][12:15]}, good to see you!"
    )
    campaigns, templates = CampaignRepository(application.db), TemplateRepository(application.db)
    template = templates.create(SPEC, DAY)
    record = campaigns.create(
        name="c",
        kind="one_off",
        template_id=template.template_id,
        template_version=1,
        audience_json="{}",
        steps_json="[]",
        state=CampaignState.DRAFT,
        now=DAY,
    )
    campaigns.materialise(record.campaign_id, leads, template.template_id, 1, DAY)
    campaigns.transition(record.campaign_id, [CampaignState.DRAFT], CampaignState.RUNNING, DAY)
    client = MailgunClient(api_key=mailgun.api_key, domain=mailgun.domain, base_url=mailgun.url)
    writer = OpenAICopywriter(openai.api_key, base_url=openai.base_url, max_retries=0)
    try:
        dispatcher = EmailDispatcher(
            campaigns,
            templates,
            client,
            SENDER,
            [b"copy-test-key-0123456789abcdefgh"],
            application.db,
            from_address="offers@mg.example.test",
            clock=lambda: DAY,
            copywriter=writer,
            copy_deadline_seconds=30.0,
        )
        report = await dispatcher.run_once()
    finally:
        await client.aclose()
        await writer.aclose()
        campaigns.transition(
            record.campaign_id, [CampaignState.RUNNING], CampaignState.CANCELLED, DAY
        )
    assert report is not None and report.outcome == "sent"
    [call] = mailgun.calls
    by_name: dict[str, Any] = {}
    for lead_id in leads:
        lead = m.Lead.get_by_id(lead_id)
        by_name[lead.first_name] = (
            str(call.rendered("text", lead.email_normalized)).splitlines()[0],
            m.EmailMessage.get(m.EmailMessage.lead == lead_id).copy_engine,
        )
    assert by_name["Cy"] == (default_opening_line("2020 Kia"), "template")
    assert by_name["Ana"][1] == by_name["Ben"][1] == "openai"
    assert by_name["Ana"][0] == "Hi Ana, good to see you!"
    sent = [json.dumps(r.body) for r in openai.requests]
    assert all(r.body["store"] is False for r in openai.requests)
    assert not any("@" in body or "received" in body for body in sent), "name and vehicle only"
