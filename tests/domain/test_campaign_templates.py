"""Email templates: the sandbox, autoescaping, strict variables, the CAN-SPAM footer, one
violation per bad part, bounded renders, the cache, and the adverse-action notice."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain import templates
from server.domain.templates import (
    CreditBureau,
    Creditor,
    RecipientContext,
    TemplateSpec,
    adverse_action_notice,
    compile_template,
    sample_context,
    template_digest,
    validate_template,
)
from server.errors import FailedPreconditionError, InvalidArgumentError

GOOD = TemplateSpec(
    name="Come back",
    subject="{{ first_name }}, your {{ vehicle }} is waiting",
    html="<html><body><p>Hi {{ first_name }}, <a href='{{ application_url }}'>resume</a></p>"
    "</body></html>",
    text="Hi {{ first_name }}, resume at {{ application_url }}",
)


def _ctx(**changes: object) -> RecipientContext:
    return dataclasses.replace(sample_context(), **changes)  # type: ignore[arg-type]


def _violations(spec: TemplateSpec) -> dict[str, str]:
    with pytest.raises(InvalidArgumentError) as e:
        validate_template(spec)
    assert e.value.reason == "INVALID_TEMPLATE"
    fields = [v.field for v in e.value.violations]
    assert len(fields) == len(set(fields)), "one violation per field"
    return {v.field: v.description for v in e.value.violations}


def _text_only(text: str) -> TemplateSpec:
    return TemplateSpec(name="t", subject="s", html="", text=text)


def test_a_good_template_renders_every_part() -> None:
    out = validate_template(GOOD).render(sample_context())
    assert out.subject == "Jordan, your 2021 Honda Civic is waiting"
    assert "Hi Jordan," in out.html and "https://apply.example.com/resume/sample" in out.html
    assert out.text.startswith("Hi Jordan, resume at https://apply.example.com/resume/sample")


def test_the_recipients_values_are_escaped_in_html_but_not_in_text_or_subject() -> None:
    ctx = _ctx(first_name='<b>Tom & "Jerry"</b>')
    out = validate_template(GOOD).render(ctx)
    assert "<b>Tom" not in out.html
    assert "&lt;b&gt;Tom &amp; &#34;Jerry&#34;&lt;/b&gt;" in out.html
    assert out.text.startswith('Hi <b>Tom & "Jerry"</b>,')
    assert out.subject.startswith('<b>Tom & "Jerry"</b>,')


def test_a_subject_is_one_line_whatever_the_values_hold() -> None:
    out = validate_template(GOOD).render(_ctx(first_name="Eve\r\nBcc: x@example.com"))
    assert "\n" not in out.subject and "\r" not in out.subject


def test_the_footer_is_always_there_and_escaped() -> None:
    ctx = _ctx(
        company_name="Acme <Lending> & Co",
        company_address="1 Road, Town, TX 75001",
        unsubscribe_url='https://u.example.com/api/unsubscribe/abc?x=1&y="2"',
    )
    bare = TemplateSpec(name="t", subject="s", html="<p>hi</p>", text="hi")
    out = validate_template(bare).render(ctx)
    assert "Acme &lt;Lending&gt; &amp; Co" in out.html
    assert "1 Road, Town, TX 75001" in out.html
    assert 'href="https://u.example.com/api/unsubscribe/abc?x=1&amp;y=&#34;2&#34;"' in out.html
    assert out.text.endswith(
        "Acme <Lending> & Co\n1 Road, Town, TX 75001\n"
        'Unsubscribe from these emails: https://u.example.com/api/unsubscribe/abc?x=1&y="2"\n'
    )


def test_the_html_footer_goes_inside_the_body() -> None:
    out = validate_template(GOOD).render(sample_context())
    assert out.html.endswith("</div>\n</body></html>")
    assert out.html.count("ccl-footer") == 1


def test_a_template_cannot_hide_or_replace_the_footer() -> None:
    # Even a template that ends inside a comment, or closes the body early, gets the footer.
    spec = TemplateSpec(name="t", subject="s", html="<body>x</body><!--", text="x")
    out = validate_template(spec).render(sample_context())
    assert "Unsubscribe" in out.html and "Unsubscribe" in out.text


def test_text_only_templates_have_no_html_part() -> None:
    out = validate_template(_text_only("hello")).render(sample_context())
    assert out.html == ""
    assert "Unsubscribe" in out.text


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ first_name.__class__ }}",
        "{{ first_name['__class__'] }}",
        "{{ range.__globals__ }}",
        "{{ first_name.format }}",
        "{{ '{:999999999}'.format(1) }}",
        "{{ 'x'.ljust(1000000000) }}",
        "{{ 'x'.center(1000000000) }}",
        "{% for i in range(2) %}{{ loop.__class__ }}{% endfor %}",
    ],
)
def test_sandbox_escapes_are_refused(payload: str) -> None:
    found = _violations(_text_only(payload))
    assert set(found) == {"template.text_body"}


@pytest.mark.parametrize(
    "payload",
    [
        "{{ lipsum(1000000) }}",
        "{{ cycler }}",
        "{{ namespace() }}",
        "{{ config }}",
        "{{ request }}",
        "{{ 'x'|center(1000000000) }}",
        "{{ '%s'|format(1) }}",
        "{{ first_name|safe }}",
        "{{ range(10)|join(',') }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{% include 'x' %}",
        "{% extends 'x' %}",
        "{% import 'x' as y %}",
        "{% for i in [1, 2] recursive %}{{ loop([i]) }}{% endfor %}",
    ],
)
def test_features_outside_the_mail_language_are_refused(payload: str) -> None:
    assert set(_violations(_text_only(payload))) == {"template.text_body"}


@pytest.mark.parametrize(
    "payload",
    [
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for a in 'x' * 99999 %}{% for b in 'x' * 99999 %}{% endfor %}{% endfor %}",
        "{% for i in range(99999) %}{{ 'x' * 99999 }}{% endfor %}",
        "{{ 'x' * 10**9 }}",
        "{{ [1] * 10**9 }}",
        "{{ '%999999999d' % 1 }}",
        "{{ 2 ** 100 ** 100 }}",
        "{{ ((2 ** 64) ** 64) ** 64 }}",
        "{% set a = 2 ** 60 %}{% set a = a * a %}{% set a = a * a %}{% set a = a * a %}"
        "{% set a = a * a %}{% set a = a * a %}{{ a }}",
        "{% set a = 'x' * 50000 %}{% set a = a ~ a %}{% set a = a ~ a %}{{ a }}",
        "{% set a = ['x'] * 50000 %}{% set a = a + a %}{% set a = a + a %}{{ a|length }}",
        "{{ range(100000)|list|string }}",
    ],
)
def test_renders_are_bounded(payload: str) -> None:
    # Refused by the step budget and the size caps (not timed here: a hang would meet the
    # suite's timeout).
    assert set(_violations(_text_only(payload))) == {"template.text_body"}


def test_loops_and_filters_that_stay_small_are_fine() -> None:
    # On the company's values (the same for every recipient); the recipient's may only be
    # printed as they are (test_recipient_variables_may_only_be_printed_as_they_are).
    spec = _text_only(
        "{% for i in range(3) %}{{ loop.index }}{{ loop.cycle('a', 'b') }}{% endfor %} "
        "{{ company_name|upper }} {{ company_name.lower() }} {{ company_name|default('us') }} "
        "{% if company_address %}{{ first_name }}{% endif %} {{ 6 * 7 }} "
        "{% filter title %}hello there{% endfilter %}"
    )
    assert (
        validate_template(spec)
        .render(sample_context())
        .text.startswith(
            "1a2b3a SAMPLE LENDING LLC sample lending llc Sample Lending LLC Jordan 42 Hello There"
        )
    )


def test_a_typo_in_a_variable_fails_at_save_time() -> None:
    found = _violations(_text_only("Hi {{ frist_name }}"))
    assert "'frist_name' is undefined" in found["template.text_body"]
    assert "first_name" in found["template.text_body"]  # names the variables there are


def test_every_documented_variable_renders() -> None:
    spec = _text_only(" ".join(f"{{{{ {name} }}}}" for name in templates.VARIABLES))
    validate_template(spec)
    assert set(sample_context().variables()) == set(templates.VARIABLES)


def test_an_unknown_vehicle_year_renders_empty() -> None:
    ctx = _ctx(vehicle_year=0, vehicle_make="Ford", vehicle_model="")
    out = validate_template(_text_only("[{{ vehicle_year }}|{{ vehicle }}]")).render(ctx)
    assert out.text.startswith("[|Ford]")


def test_one_violation_per_bad_part() -> None:
    spec = TemplateSpec(
        name="",
        subject="{{ first_name",
        html="{% for %}",
        text="{{ nope }}",
    )
    found = _violations(spec)
    assert set(found) == {
        "template.name",
        "template.subject",
        "template.html_body",
        "template.text_body",
    }
    assert found["template.subject"].startswith("line 1:")


def test_only_the_bad_part_is_named() -> None:
    assert set(_violations(dataclasses.replace(GOOD, html="{{ x.__class__ }}"))) == {
        "template.html_body"
    }


def test_subject_and_text_are_required_html_is_not() -> None:
    found = _violations(TemplateSpec(name="n", subject=" ", html="", text=""))
    assert found == {"template.subject": "is required", "template.text_body": "is required"}


def test_sizes_are_limited() -> None:
    found = _violations(
        TemplateSpec(
            name="n" * (templates.MAX_NAME_CHARS + 1),
            subject="s" * (templates.MAX_SUBJECT_SOURCE_CHARS + 1),
            html="h" * (templates.MAX_BODY_SOURCE_CHARS + 1),
            text="t" * (templates.MAX_BODY_SOURCE_CHARS + 1),
        )
    )
    assert all("at most" in d for d in found.values()) and len(found) == 4


def test_a_subject_that_renders_too_long_is_refused() -> None:
    spec = dataclasses.replace(GOOD, subject="{{ 'x' * 400 }}")
    assert "longer than" in _violations(spec)["template.subject"]


def test_a_send_time_failure_is_a_failed_precondition() -> None:
    # A recipient's values can no longer make the body do more work (they may only be
    # printed); what is left per recipient is a subject their values make too long.
    compiled = validate_template(dataclasses.replace(GOOD, subject="{{ first_name }}"))
    with pytest.raises(FailedPreconditionError) as e:
        compiled.render(_ctx(first_name="x" * (templates.MAX_SUBJECT_CHARS + 1)))
    assert e.value.reason == "TEMPLATE_RENDER_FAILED"
    assert e.value.metadata == {"part": "subject"}
    batch = compiled.render_batch("Sample Lending LLC", "100 Main St")
    with pytest.raises(FailedPreconditionError):
        batch.subject_for({"first_name": "x" * (templates.MAX_SUBJECT_CHARS + 1)})


def test_compiled_templates_are_cached_by_content() -> None:
    templates.clear_template_cache()
    first = compile_template(GOOD)
    assert compile_template(dataclasses.replace(GOOD)) is first
    renamed = dataclasses.replace(GOOD, name="other name")
    assert template_digest(renamed) == template_digest(GOOD)
    edited = dataclasses.replace(GOOD, text="changed {{ first_name }}")
    assert compile_template(edited) is not first
    assert template_digest(edited) != template_digest(GOOD)
    # Parts are length-prefixed in the digest: moving text between parts changes it.
    a = TemplateSpec(name="n", subject="ab", html="", text="c")
    b = TemplateSpec(name="n", subject="a", html="", text="bc")
    assert template_digest(a) != template_digest(b)


def test_the_cache_is_bounded() -> None:
    templates.clear_template_cache()
    for i in range(templates.TEMPLATE_CACHE_SIZE + 10):
        compile_template(_text_only(f"n{i}"))
    info = templates._compile_cached.cache_info()
    assert info.currsize == templates.TEMPLATE_CACHE_SIZE


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_any_first_name_is_escaped_in_html_and_kept_in_text(name: str) -> None:
    spec = TemplateSpec(
        name="t", subject="s", html="<p>{{ first_name }}</p>", text="{{ first_name }}"
    )
    out = validate_template(spec).render(_ctx(first_name=name))
    assert out.text.startswith(" ".join(name.split()))  # a recipient's value is one line
    body = out.html[: out.html.index("\n<div")]
    assert "<" not in body[3:-4] and ">" not in body[3:-4]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_source_never_escapes_the_validation_error(source: str) -> None:
    try:
        validate_template(_text_only(source))
    except InvalidArgumentError as e:
        assert [v.field for v in e.violations] == ["template.text_body"]


BUREAU = CreditBureau(
    name="Example Credit Bureau",
    address="PO Box 1, Atlanta, GA 30301",
    phone="1-800-555-0100",
    website="https://bureau.example.com",
)
CREDITOR = Creditor(name="Sample <Lending> LLC", address="100 Main St, Springfield, IL 62701")


def test_the_adverse_action_notice_has_what_the_law_requires() -> None:
    out = adverse_action_notice(
        first_name="Jordan",
        creditor=CREDITOR,
        bureau=BUREAU,
        reasons=["Insufficient income", "Length of employment"],
        decided_on=dt.date(2026, 3, 5),
        credit_score=612,
        score_range=(300, 850),
        score_factors=["Too many recent inquiries"],
    )
    for part in (out.text, out.html):
        assert "Example Credit Bureau" in part
        assert "PO Box 1, Atlanta, GA 30301" in part and "1-800-555-0100" in part
        assert "within 60 days" in part
        assert "Equal Credit Opportunity Act" in part
        assert "Insufficient income" in part and "Length of employment" in part
        assert "did not make this decision" in part
        assert "612" in part and "300 to 850" in part
        assert "Federal Trade Commission" in part
    assert "March 5, 2026" in out.text
    assert "Sample &lt;Lending&gt; LLC" in out.html and "<Lending>" not in out.html
    assert "Sample <Lending> LLC" in out.subject
    assert "nsubscribe" not in out.text  # transactional: no unsubscribe link


def test_the_notice_without_a_score_and_with_escaped_reasons() -> None:
    out = adverse_action_notice(
        first_name="",
        creditor=CREDITOR,
        bureau=BUREAU,
        reasons=["<script>x</script>"],
        decided_on=dt.date(2026, 1, 2),
    )
    assert "Dear Applicant," in out.text
    assert "credit score" not in out.text.lower()
    assert "<script>" not in out.html and "&lt;script&gt;" in out.html


def test_the_notice_needs_a_reason() -> None:
    with pytest.raises(ValueError):
        adverse_action_notice(
            first_name="J", creditor=CREDITOR, bureau=BUREAU, reasons=[], decided_on=dt.date.today()
        )


# --- Batch rendering: one body per Mailgun call, personalised by %recipient.x% ----------------

RICH = TemplateSpec(
    name="rich",
    subject="  {{ first_name }},\n your {{ vehicle }}  at {{ dealer_name }}{{ vehicle_year }} ",
    html="<html><body><h1>{{ company_name|upper }}</h1>"
    "{% for i in range(2) %}<p>{{ loop.index }} {{ first_name }}</p>{% endfor %}"
    "{% if company_address %}<a href='{{ application_url }}'>{{ vehicle_make }}</a>{% endif %}"
    '<a href="{{ unsubscribe_url }}">x</a> {{ vehicle_model }}</body></html>',
    text="Hi {{ first_name }}{{ vehicle }}\n{{ vehicle_year }} {{ vehicle_make }} "
    "{{ vehicle_model }} {{ dealer_name }} {{ application_url }} {{ unsubscribe_url }} "
    "{{ company_name }} {% raw %}{{ first_name }}{% endraw %}",
)


@pytest.mark.parametrize(
    "source",
    [
        "{{ first_name|upper }}",
        "{{ first_name|default('friend') }}",
        "{{ first_name.lower() }}",
        "{{ first_name[0] }}",
        "{{ first_name ~ '!' }}",
        "{{ 'Hi ' + first_name }}",
        "{{ first_name if company_name else '' }}",
        "{{ first_name == 'x' }}",
        "{{ first_name is defined }}",
        "{% if first_name %}hi{% endif %}",
        "{% if dealer_name == 'x' %}hi{% endif %}",
        "{% for c in first_name %}{{ c }}{% endfor %}",
        "{% for i in range(vehicle_year|int) %}{% endfor %}",
        "{{ vehicle_year * 2 }}",
        "{{ [application_url]|first }}",
        "{{ unsubscribe_url|urlencode }}",
        "{% set first_name = 'x' %}{{ first_name }}",
        "{% for first_name in ['a'] %}{{ first_name }}{% endfor %}",
        "{% filter upper %}{{ first_name }}{% endfilter %}",
        "{% set x %}{{ first_name }}{% endset %}{{ x|upper }}",
        "{% autoescape false %}{{ first_name }}{% endautoescape %}",
    ],
)
def test_recipient_variables_may_only_be_printed_as_they_are(source: str) -> None:
    found = _violations(_text_only(source))
    assert set(found) == {"template.text_body"}
    assert (
        "may only be printed" in found["template.text_body"]
        or "assigned" in (found["template.text_body"])
    )


def test_one_violation_per_part_for_recipient_variable_misuse() -> None:
    spec = TemplateSpec(
        name="t",
        subject="{{ first_name|title }} {{ vehicle|lower }}",
        html="<p>{% if dealer_name %}{{ dealer_name }}{% endif %}</p>",
        text="{{ first_name }}",  # fine
    )
    assert set(_violations(spec)) == {"template.subject", "template.html_body"}


@pytest.mark.parametrize(
    "source", ["%recipient.first_name%", "{{ '%recip' ~ 'ient.x%' }}", "50%RECIPIENT"]
)
def test_a_template_may_not_write_mailgun_placeholders_itself(source: str) -> None:
    found = _violations(_text_only(source))
    assert "%recipient" in found["template.text_body"]


def test_render_batch_puts_placeholders_where_the_recipients_values_go() -> None:
    batch = validate_template(RICH).render_batch("Sample <Lending>", "100 Main St")
    assert batch.subject == (
        "%recipient.first_name%, your %recipient.vehicle% at "
        "%recipient.dealer_name%%recipient.vehicle_year%"
    )
    assert "<p>1 %recipient.first_name_html%</p><p>2 %recipient.first_name_html%</p>" in (
        batch.html
    )
    assert "SAMPLE &lt;LENDING&gt;" in batch.html
    assert '<a href="%recipient.unsubscribe_url_html%">Unsubscribe</a>' in batch.html
    assert batch.text.startswith("Hi %recipient.first_name%%recipient.vehicle%\n")
    assert batch.text.endswith("Unsubscribe from these emails: %recipient.unsubscribe_url%\n")
    assert "{{ first_name }}" in batch.text  # raw text stays text


def test_recipient_variables_give_plain_and_escaped_values() -> None:
    values = templates.recipient_variables(
        _ctx(first_name=" Ann\n<b>&", vehicle_year=0, vehicle_make="Kia", vehicle_model="")
    )
    assert set(values) == {
        *templates.RECIPIENT_VARIABLES,
        *(n + "_html" for n in templates.RECIPIENT_VARIABLES),
    }
    assert values["first_name"] == "Ann <b>&"
    assert values["first_name_html"] == "Ann &lt;b&gt;&amp;"
    assert values["vehicle"] == "Kia" and values["vehicle_year"] == ""


def test_company_details_that_look_like_placeholders_are_refused_at_send_time() -> None:
    with pytest.raises(FailedPreconditionError) as e:
        validate_template(GOOD).render_batch("Evil %recipient.first_name% LLC", "x")
    assert e.value.reason == "TEMPLATE_RENDER_FAILED"


def test_substitution_is_one_pass() -> None:
    out = templates.substitute(
        "%recipient.a% %recipient.b% %recipient.zz% %recipient.a",
        {"a": "%recipient.b%", "b": "B"},
    )
    assert out == "%recipient.b% B %recipient.zz% %recipient.a"


_values = st.lists(
    st.sampled_from([*"ab <>&\"' \n\t%.é", "%recipient.first_name%", "</body>"]), max_size=12
).map("".join)


@settings(max_examples=150, deadline=None)
@given(
    first_name=_values,
    vehicle_year=st.sampled_from([0, 1999, 2024]),
    vehicle_make=_values,
    vehicle_model=_values,
    dealer_name=_values,
    application_url=_values,
    unsubscribe_url=_values,
    company_name=st.text(alphabet="ab <>&\"'", max_size=20),
    spec=st.sampled_from(
        [
            GOOD,
            RICH,
            _text_only("{{ first_name }}"),
            dataclasses.replace(RICH, html="<p>{{ first_name }}</p>"),
        ]
    ),
)
def test_a_batch_rendering_personalised_is_the_recipients_own_render(
    first_name: str,
    vehicle_year: int,
    vehicle_make: str,
    vehicle_model: str,
    dealer_name: str,
    application_url: str,
    unsubscribe_url: str,
    company_name: str,
    spec: TemplateSpec,
) -> None:
    ctx = RecipientContext(
        first_name=first_name,
        vehicle_year=vehicle_year,
        vehicle_make=vehicle_make,
        vehicle_model=vehicle_model,
        dealer_name=dealer_name,
        application_url=application_url,
        unsubscribe_url=unsubscribe_url,
        company_name=company_name,
        company_address="1 Main St <Suite & 2>",
    )
    compiled = validate_template(spec)
    batch = compiled.render_batch(ctx.company_name, ctx.company_address)
    assert batch.personalise(templates.recipient_variables(ctx)) == compiled.render(ctx)
    # Every part, the footer and its unsubscribe link included.
    own = compiled.render(ctx)
    link = templates.recipient_variables(ctx)["unsubscribe_url_html"]
    if own.html:
        assert f'<a href="{link}">Unsubscribe</a>' in own.html
    assert own.text.endswith(f"{' '.join(unsubscribe_url.split())}\n")
