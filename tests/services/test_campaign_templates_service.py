"""Email templates through the service (SQLite and PostgreSQL): checked when saved (one
violation per bad part, reason INVALID_TEMPLATE), versioned on update, listed a page at a time,
previewed for the sample recipient, an inline template or a lead, always with the footer."""

from __future__ import annotations

import pytest

from server.app import Application
from server.domain.principal import Principal, Role
from server.domain.templates import TemplateSpec
from server.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from server.storage.pagination import MAX_PAGE_SIZE
from server.transport import converters
from support.data import example_message

ADMIN = Principal(key_id="k", role=Role.ADMIN)


async def new_lead(application: Application, email: str, **changes: object) -> str:
    message = example_message(email=email, **changes)
    result = await application.orchestrator.process(ADMIN, "", converters.lead_input(message.lead))
    return result.lead.lead_id


GOOD = TemplateSpec(
    name="Finish your application",
    subject="{{ first_name }}, your {{ vehicle }} is waiting",
    html="<p>Hi {{ first_name }}, <a href='{{ application_url }}'>finish</a></p>",
    text="Hi {{ first_name }}, finish here: {{ application_url }}",
)


async def test_create_get_and_versions(application: Application) -> None:
    service = application.campaign_templates
    created = await service.create(GOOD)
    assert created.version == 1 and created.current_version == 1
    assert (await service.get(created.template_id)).subject == GOOD.subject
    changed = TemplateSpec(name="", subject="New {{ first_name }}", html="", text="")
    updated = await service.update(created.template_id, changed, ["subject"])
    assert updated.version == 2
    assert updated.subject == "New {{ first_name }}"
    assert updated.text_body == GOOD.text and updated.name == GOOD.name  # unmasked: kept
    assert (await service.get(created.template_id)).version == 2
    first = await service.get(created.template_id, 1)
    assert first.version == 1 and first.subject == GOOD.subject  # a version never changes
    with pytest.raises(NotFoundError) as e:
        await service.get(created.template_id, 3)
    assert e.value.reason == "TEMPLATE_NOT_FOUND"
    with pytest.raises(NotFoundError):
        await service.get("00000000-0000-0000-0000-000000000000")


async def test_a_bad_template_names_each_bad_part(application: Application) -> None:
    bad = TemplateSpec(
        name="",
        subject="{{ first_name",
        html="{% for x in range(10) %}{{ x.__class__ }}{% endfor %}",
        text="Hello {{ no_such_variable }}",
    )
    with pytest.raises(InvalidArgumentError) as e:
        await application.campaign_templates.create(bad)
    assert e.value.reason == "INVALID_TEMPLATE"
    fields = [v.field for v in e.value.violations]
    assert fields == [
        "template.name",
        "template.subject",
        "template.html_body",
        "template.text_body",
    ]
    assert "no_such_variable" in e.value.violations[-1].description


async def test_an_update_is_checked_and_its_mask_too(application: Application) -> None:
    service = application.campaign_templates
    created = await service.create(GOOD)
    with pytest.raises(InvalidArgumentError) as e:
        await service.update(
            created.template_id, TemplateSpec("", "", "", "{{ oops"), ["text_body"]
        )
    assert [v.field for v in e.value.violations] == ["template.text_body"]
    with pytest.raises(InvalidArgumentError) as e:
        await service.update(created.template_id, GOOD, ["name", "template_id"])
    assert e.value.violations[0].field == "update_mask"
    with pytest.raises(NotFoundError):
        await service.update("00000000-0000-0000-0000-000000000000", GOOD, [])
    assert (await service.get(created.template_id)).version == 1


async def test_list_pages_newest_first(application: Application) -> None:
    service = application.campaign_templates
    ids = [(await service.create(GOOD)).template_id for _ in range(3)]
    first = await service.list_templates(2, "")
    assert len(first.items) == 2 and first.next_page_token
    second = await service.list_templates(2, first.next_page_token)
    seen = [t.template_id for t in first.items + second.items]
    assert seen[:3] == ids[::-1]
    with pytest.raises(InvalidArgumentError) as e:
        await service.list_templates(MAX_PAGE_SIZE + 1, "")
    assert e.value.reason == "INVALID_PAGE_SIZE"
    with pytest.raises(InvalidArgumentError) as e:
        await service.list_templates(2, "not-a-token")
    assert e.value.reason == "INVALID_PAGE_TOKEN"


async def test_preview_sample_inline_and_for_a_lead(application: Application) -> None:
    service = application.campaign_templates
    stored = await service.create(GOOD)
    sample = await service.preview(
        template_id=stored.template_id, version=0, inline=None, lead_id=""
    )
    assert sample.template_version == 1
    assert sample.email.subject == "Jordan, your 2021 Honda Civic is waiting"
    settings = application.settings
    for part in (sample.email.text, sample.email.html):
        assert settings.company_name in part
        assert f"{settings.public_base_url}/api/unsubscribe/" in part
    inline = await service.preview(
        template_id="",
        version=0,
        inline=TemplateSpec("Inline", "Hi {{ first_name }}", "", "Text only"),
        lead_id="",
    )
    assert inline.template_version == 0 and inline.email.html == ""
    with pytest.raises(InvalidArgumentError) as e:
        await service.preview(
            template_id="", version=0, inline=TemplateSpec("x", "{{", "", "t"), lead_id=""
        )
    assert e.value.reason == "INVALID_TEMPLATE"
    with pytest.raises(InvalidArgumentError):
        await service.preview(template_id="", version=0, inline=None, lead_id="")

    lead_id = await new_lead(application, "preview.lead@example.com", first_name="Ana")
    for_lead = await service.preview(
        template_id=stored.template_id, version=0, inline=None, lead_id=lead_id
    )
    assert for_lead.email.subject == "Ana, your 2021 Toyota Camry is waiting"
    assert "Hi Ana," in for_lead.email.html
    assert f"/apply/resume/{lead_id}" in for_lead.email.text
    with pytest.raises(NotFoundError) as e:
        await service.preview(
            template_id=stored.template_id,
            version=0,
            inline=None,
            lead_id="00000000-0000-0000-0000-000000000000",
        )
    assert e.value.reason == "LEAD_NOT_FOUND"


async def test_preview_fails_for_a_lead_it_does_not_render_for(
    application: Application,
) -> None:
    service = application.campaign_templates
    # Renders for the sample, fails for a lead whose long name makes the subject too long.
    spec = TemplateSpec("Long", "{{ first_name }} " * 4, "", "text")
    stored = await service.create(spec)
    lead_id = await new_lead(application, "preview.long@example.com", first_name="A" * 100)
    with pytest.raises(FailedPreconditionError) as e:
        await service.preview(
            template_id=stored.template_id, version=0, inline=None, lead_id=lead_id
        )
    assert e.value.reason == "TEMPLATE_RENDER_FAILED"
