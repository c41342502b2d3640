"""Email templates: sandboxed Jinja2 compiled and checked at save time, rendered with the
CAN-SPAM footer at send time, and the FCRA/ECOA adverse-action notice.

Templates are written by staff but render values a lead typed (a first name), and run inside the
server, so the language is cut down to what a marketing email needs, and every render is bounded:

- `ImmutableSandboxedEnvironment`: no `_`-prefixed attributes, no mutation of lists or dicts.
  On top of that only a few `str` methods are reachable (`_STR_METHODS`), and nothing of any
  other type (the variables are plain strings), so `''.__class__.__mro__` and friends fail.
- Only the filters in `_FILTERS` (none that can blow a small value up: no `center`, `indent`,
  `format`, `join`, `replace`, `wordwrap`, `safe`) and one global, a `range` capped like Jinja's.
- No macros, call blocks, imports, includes, extends or recursive loops (rejected when compiled):
  without them there is no recursion, so work grows only through loops and operators.
- `*`, `**`, `%` and `+` are checked before they run (a string or list may not grow past
  `MAX_VALUE_CHARS`, an integer past `MAX_INT_BITS`; `%` only on numbers; small exponents),
  and every `~` after (so a value at most doubles past the cap before it is refused).
- Every loop iteration and filter call spends one step of `MAX_RENDER_STEPS` and checks a
  wall-clock deadline (`RENDER_DEADLINE_SECONDS`); the output is streamed and may not pass
  `MAX_RENDERED_CHARS`. Jinja's own sandbox caps `range` at `MAX_RANGE` (100,000) items, which
  alone does not stop nested loops: the step budget does.

`StrictUndefined` makes an unknown variable an error, and `validate_template` renders every part
against `sample_context()`, so a typo fails when the template is saved, not when it is sent.

Batch sending: Mailgun sends one body to up to 1,000 recipients, personalised only by
`%recipient.<name>%` substitution. `CompiledTemplate.render_batch` renders each part once with
placeholders for the `RECIPIENT_VARIABLES` (`%recipient.<name>_html%`, values escaped beforehand,
in the HTML part) and `recipient_variables` gives one recipient's values. That is exact because a
template may only print a recipient variable as it is (`{{ first_name }}`; no filter, test,
condition, loop, attribute, call or operator on it: `validate_template` walks the syntax tree),
and may not write `%recipient` text itself. Recipient values are one line (white space
collapsed), and the subject is the template's own text made one line with the values put in:
`render` (the preview) builds it that way too, so both give the same message.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from server.errors import FailedPreconditionError, FieldViolation, InvalidArgumentError

MAX_NAME_CHARS = 200
MAX_SUBJECT_SOURCE_CHARS = 1_000
MAX_BODY_SOURCE_CHARS = 100_000
# A rendered subject longer than this is an error (RFC 5322 allows 998 per header line, but
# mail clients show about 60 and spam filters dislike long ones).
MAX_SUBJECT_CHARS = 300
MAX_RENDERED_CHARS = 500_000
MAX_VALUE_CHARS = 100_000
MAX_RENDER_STEPS = 100_000
MAX_RANGE = 100_000
MAX_EXPONENT = 64
MAX_INT_BITS = 1_024
RENDER_DEADLINE_SECONDS = 1.0
TEMPLATE_CACHE_SIZE = 256

# The reason of a template refused when saved: the contract's (campaign_service.proto).
TEMPLATE_INVALID = "INVALID_TEMPLATE"
TEMPLATE_RENDER_FAILED = "TEMPLATE_RENDER_FAILED"

# The variables a template may use; `RecipientContext.variables` gives exactly these.
VARIABLES = (
    "first_name",
    "vehicle",
    "vehicle_year",
    "vehicle_make",
    "vehicle_model",
    "dealer_name",
    "application_url",
    "unsubscribe_url",
    "company_name",
    "company_address",
    "opening_line",
)
# The variables that differ between recipients. In a batch send (one body for up to 1,000
# recipients) each goes in as a Mailgun placeholder, so a template may only print them as they
# are (`{{ first_name }}`): see `validate_template` and `CompiledTemplate.render_batch`.
RECIPIENT_VARIABLES = (
    "first_name",
    "vehicle",
    "vehicle_year",
    "vehicle_make",
    "vehicle_model",
    "dealer_name",
    "application_url",
    "unsubscribe_url",
    "opening_line",
)
# The suffix of a recipient variable's HTML-escaped value (`%recipient.first_name_html%`):
# Mailgun substitutes raw text, so the HTML part gets values escaped beforehand.
HTML_SUFFIX = "_html"
_PLACEHOLDER = re.compile(r"%recipient\.([A-Za-z0-9_]+)%")


@dataclass(frozen=True)
class TemplateSpec:
    """A template as saved (the proto's `Template`: `html` is `html_body`, `text` is
    `text_body`). `html` may be empty: the message is then text only."""

    name: str
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class RecipientContext:
    """What a template may say about one recipient, and the footer's sender details.
    `vehicle_year` 0 and empty strings mean not known."""

    first_name: str = field(repr=False)
    vehicle_year: int
    vehicle_make: str
    vehicle_model: str
    dealer_name: str
    application_url: str
    unsubscribe_url: str
    company_name: str
    company_address: str
    # A personalised first sentence (OpenAI's, when configured); empty: `default_opening_line`.
    opening_line: str = field(default="", repr=False)

    @property
    def vehicle(self) -> str:
        """ "2021 Honda Civic", or whatever part of it is known."""
        year = str(self.vehicle_year) if self.vehicle_year else ""
        return " ".join(p for p in (year, self.vehicle_make, self.vehicle_model) if p)

    def variables(self) -> dict[str, str]:
        """The template's variables (`VARIABLES`), all strings. The recipient's own values
        (`RECIPIENT_VARIABLES`) are on one line: runs of white space become one space, and none
        leads or trails (the same values `recipient_variables` hands to Mailgun)."""
        # Its text fields read directly: `asdict` deep-copies, a tenth of a campaign's CPU.
        values = {name: getattr(self, name) for name in _text_fields()}
        values["vehicle_year"] = str(self.vehicle_year) if self.vehicle_year else ""
        values["vehicle"] = self.vehicle
        values["opening_line"] = self.opening_line or default_opening_line(self.vehicle)
        for name in RECIPIENT_VARIABLES:
            values[name] = _collapse(values[name])
        return values


@functools.cache
def _text_fields() -> tuple[str, ...]:
    """`RecipientContext`'s fields that hold text (all but `vehicle_year`)."""
    return tuple(f.name for f in fields(RecipientContext) if f.type in ("str", str))


def default_opening_line(vehicle: str) -> str:
    """The template engine's opening line: the deterministic fallback of a personalised one."""
    if vehicle:
        return f"Your {vehicle} is still waiting for you."
    return "Your application is saved and only a few steps from done."


def recipient_variables(ctx: RecipientContext) -> dict[str, str]:
    """One recipient's values for a batch send's `recipient-variables`: each of
    `RECIPIENT_VARIABLES` as plain text (for `%recipient.<name>%` in the subject and text) and
    HTML-escaped (`<name>_html`, for `%recipient.<name>_html%` in the HTML part)."""
    values = ctx.variables()
    out: dict[str, str] = {}
    for name in RECIPIENT_VARIABLES:
        out[name] = values[name]
        out[name + HTML_SUFFIX] = str(escape(values[name]))
    return out


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """`text` with every `%recipient.<name>%` whose name is in `variables` replaced by its value,
    in one pass (a value is never substituted into again), as Mailgun does for each recipient.
    Unknown names are left as they are."""
    return _PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), text)


def sample_context() -> RecipientContext:
    """A plausible recipient, used to check a template when it is saved."""
    return RecipientContext(
        first_name="Jordan",
        vehicle_year=2021,
        vehicle_make="Honda",
        vehicle_model="Civic",
        dealer_name="Sample Motors",
        application_url="https://apply.example.com/resume/sample",
        unsubscribe_url="https://apply.example.com/api/unsubscribe/sample",
        company_name="Sample Lending LLC",
        company_address="100 Main St, Springfield, IL 62701",
    )


@dataclass(frozen=True)
class RenderedEmail:
    """A message ready to send. `html` is empty for a text-only message."""

    subject: str = field(repr=False)
    html: str = field(repr=False)
    text: str = field(repr=False)


class _RenderLimitError(Exception):
    """A render used more than its budget (steps, time, size) or a forbidden construct."""


@dataclass
class _Budget:
    steps: int
    deadline: float

    def spend(self, n: int = 1) -> None:
        self.steps -= n
        if self.steps < 0:
            raise _RenderLimitError("the template does too much work")
        if time.monotonic() > self.deadline:
            raise _RenderLimitError("the template took too long to render")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "template_budget", default=None
)


def _spend(n: int = 1) -> None:
    budget = _BUDGET.get()
    if budget is None:  # only reachable by calling a compiled template outside `_render`
        raise _RenderLimitError("templates render only through CompiledTemplate")
    budget.spend(n)


def _guard_iter(value: Iterable[Any]) -> Iterator[Any]:
    for item in value:
        _spend()
        yield item


def _bounded_range(*args: int) -> Iterator[int]:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise _RenderLimitError(f"range() is limited to {MAX_RANGE} items")
    return _guard_iter(r)


def _check_size(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_VALUE_CHARS:
        raise _RenderLimitError(f"a value may not exceed {MAX_VALUE_CHARS} characters")
    return value


def _metered(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _spend()
        return _check_size(fn(*args, **kwargs))

    return wrapper


# Filters whose output is at most a small multiple of their input.
_FILTER_NAMES = (
    "abs capitalize count d default e escape first float int last length list lower max min "
    "reverse round sort string striptags sum title trim truncate unique upper urlencode "
    "wordcount"
).split()
_STR_METHODS = frozenset(
    "capitalize casefold endswith isalnum isalpha isdigit islower isspace istitle isupper lower "
    "lstrip rstrip startswith strip swapcase title upper".split()
)
_LOOP_ATTRIBUTES = frozenset(
    "index index0 revindex revindex0 first last length previtem nextitem changed cycle".split()
)
_FORBIDDEN_NODES = (
    nodes.Macro,
    nodes.CallBlock,
    nodes.Import,
    nodes.FromImport,
    nodes.Include,
    nodes.Extends,
    nodes.Block,
)


class _MailSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str):
            return attr in _STR_METHODS
        return isinstance(obj, jinja2.runtime.LoopContext) and attr in _LOOP_ATTRIBUTES

    def wrap_str_format(self, value: Any) -> None:
        # Jinja hands out a sandboxed `str.format` before asking `is_safe_attribute`; a width
        # field (`'{:999999999}'`) still builds a huge string, so `format` is simply not there.
        return None

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int):
                    if len(seq) * max(n, 0) > MAX_VALUE_CHARS:
                        raise _RenderLimitError("a repeated value would be too long")
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise _RenderLimitError("numbers are limited in size")
        elif operator == "**":
            if not isinstance(right, int | float) or abs(right) > MAX_EXPONENT:
                raise _RenderLimitError(f"exponents are limited to {MAX_EXPONENT}")
            if isinstance(left, int) and left.bit_length() * abs(right) > MAX_INT_BITS:
                raise _RenderLimitError("numbers are limited in size")
        elif operator == "%":
            if not (isinstance(left, int | float) and isinstance(right, int | float)):
                raise _RenderLimitError("% is only for numbers")
        result = super().call_binop(context, operator, left, right)
        return _check_size(result)


def _make_environment(*, autoescape: bool) -> _MailSandbox:
    env = _MailSandbox(
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
        cache_size=0,
        keep_trailing_newline=True,
    )
    defaults = env.filters
    env.filters = {name: _metered(defaults[name]) for name in _FILTER_NAMES}
    env.filters["_ccl_iter"] = _guard_iter
    env.filters["_ccl_size"] = _check_size
    env.globals = {"range": _bounded_range}
    return env


_HTML_ENV = _make_environment(autoescape=True)
_PLAIN_ENV = _make_environment(autoescape=False)


def _instrument(tree: nodes.Template) -> None:
    """Rejects what templates may not use, and routes every loop and `~` through the guards."""
    for node in tree.find_all(_FORBIDDEN_NODES):
        kind = type(node).__name__.lower()
        raise jinja2.TemplateSyntaxError(f"{kind} is not allowed in email templates", node.lineno)
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            raise jinja2.TemplateSyntaxError("recursive loops are not allowed", loop.lineno)
        loop.iter = nodes.Filter(loop.iter, "_ccl_iter", [], [], None, None, lineno=loop.lineno)
    # Wrap each `~` in place (its parent's fields are replaced; find_all yields before we edit).
    for parent in list(tree.find_all(nodes.Node)):
        for name, value in parent.iter_fields():
            if isinstance(value, nodes.Concat):
                setattr(parent, name, _sized(value))
            elif isinstance(value, list):
                setattr(
                    parent,
                    name,
                    [_sized(v) if isinstance(v, nodes.Concat) else v for v in value],
                )


_PLACEHOLDER_TEXT = "may not contain Mailgun's %recipient.…% placeholders of its own"
# Blocks whose body's output is changed before it is sent: a recipient variable printed inside
# one would be changed as its placeholder, not as its value.
_TRANSFORMING_BLOCKS = (nodes.FilterBlock, nodes.AssignBlock, nodes.ScopedEvalContextModifier)


def _recipient_use_problem(tree: nodes.Template) -> str | None:
    """Why the template uses a recipient variable other than by printing it as it is
    (`{{ first_name }}`), or None. In a batch send the variable is a placeholder Mailgun fills
    in later, so a filter, test, comparison, condition, loop, attribute, call or `~` on it (or
    assigning to its name, or printing it inside a block that filters or re-escapes its body)
    would work on the placeholder, not on the recipient's value."""

    def walk(node: nodes.Node, parent: nodes.Node | None, transformed: bool) -> str | None:
        if isinstance(node, nodes.Name) and node.name in RECIPIENT_VARIABLES:
            if node.ctx != "load":
                return f"line {node.lineno}: '{node.name}' may not be assigned to"
            if not isinstance(parent, nodes.Output) or transformed:
                return (
                    f"line {node.lineno}: '{node.name}' may only be printed as it is, "
                    f"as in {{{{ {node.name} }}}} (no filter, test, condition, loop, "
                    "attribute, call, operator or filtering block)"
                )
            return None
        inside = transformed or isinstance(node, _TRANSFORMING_BLOCKS)
        for child in node.iter_child_nodes():
            problem = walk(child, node, inside)
            if problem:
                return problem
        return None

    return walk(tree, None, False)


def _sized(node: nodes.Concat) -> nodes.Filter:
    return nodes.Filter(node, "_ccl_size", [], [], None, None, lineno=node.lineno)


def _compile_part(env: _MailSandbox, source: str) -> jinja2.Template:
    tree = env.parse(source)
    _instrument(tree)
    return env.from_string(tree)


def _render(template: jinja2.Template, variables: dict[str, str]) -> str:
    token = _BUDGET.set(_Budget(MAX_RENDER_STEPS, time.monotonic() + RENDER_DEADLINE_SECONDS))
    try:
        out: list[str] = []
        size = 0
        for chunk in template.generate(variables):
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                raise _RenderLimitError(f"the output may not exceed {MAX_RENDERED_CHARS} chars")
            _spend()
            out.append(chunk)
        return "".join(out)
    finally:
        _BUDGET.reset(token)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"line {exc.lineno}: {exc.message}"
    if isinstance(exc, jinja2.UndefinedError):
        return f"{exc.message}; the variables are: {', '.join(VARIABLES)}"
    if isinstance(exc, SecurityError):
        return "uses an attribute or function that templates may not use"
    if isinstance(exc, _RenderLimitError):
        return str(exc)
    if isinstance(exc, RecursionError | MemoryError):
        return "the template does too much work"
    return f"does not render: {type(exc).__name__}"


def _collapse(subject: str) -> str:
    # One line: a header may not hold a line break (header injection), and runs of spaces go.
    return " ".join(subject.split())


def _footer_html(company_name: str, company_address: str, unsubscribe_url: str) -> Markup:
    # `unsubscribe_url` is escaped here unless it is Markup (a batch's placeholder).
    return Markup(
        '\n<div class="ccl-footer" style="font-size:12px;color:#666">'
        "<p>{company}<br>{address}</p>"
        '<p><a href="{url}">Unsubscribe</a> from these emails.</p></div>\n'
    ).format(company=company_name, address=company_address, url=unsubscribe_url)


def _footer_text(company_name: str, company_address: str, unsubscribe_url: str) -> str:
    return (
        f"\n\n--\n{company_name}\n{company_address}\n"
        f"Unsubscribe from these emails: {unsubscribe_url}\n"
    )


def _placeholders(company_name: str, company_address: str, *, html: bool) -> dict[str, str]:
    """A context whose recipient variables are Mailgun placeholders: `%recipient.<name>_html%`
    as Markup in the HTML part (so autoescaping leaves it alone; the value is escaped before it
    is sent), `%recipient.<name>%` elsewhere."""
    values = {"company_name": company_name, "company_address": company_address}
    for name in RECIPIENT_VARIABLES:
        if html:
            values[name] = Markup("%recipient.{}{}%").format(name, HTML_SUFFIX)
        else:
            values[name] = f"%recipient.{name}%"
    return values


def _blanks(company_name: str, company_address: str) -> dict[str, str]:
    values = dict.fromkeys(RECIPIENT_VARIABLES, "")
    values.update(company_name=company_name, company_address=company_address)
    return values


def _has_placeholder_text(text: str) -> bool:
    return "%recipient" in text.lower()


_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def _with_html_footer(html: str, footer: Markup) -> str:
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + str(footer)
    at = ends[-1].start()
    return html[:at] + str(footer) + html[at:]


@dataclass(frozen=True)
class BatchRendering:
    """A template rendered once for a whole batch: the recipient variables are Mailgun
    placeholders (`%recipient.<name>%`, `%recipient.<name>_html%` in `html`), footers included.
    Substituting a recipient's `recipient_variables` gives exactly `CompiledTemplate.render`'s
    message for them (`personalise`)."""

    subject: str = field(repr=False)
    html: str = field(repr=False)
    text: str = field(repr=False)

    def parts(self) -> tuple[str, str, str]:
        """Subject, HTML and text, placeholders included."""
        return self.subject, self.html, self.text

    @functools.cached_property
    def placeholders(self) -> frozenset[str]:
        """The recipient variables its parts print (`first_name`, `first_name_html`, ...)."""
        return frozenset(m.group(1) for part in self.parts() for m in _PLACEHOLDER.finditer(part))

    def used(self, variables: Mapping[str, str]) -> dict[str, str]:
        """Those of a recipient's `variables` that its parts print: all Mailgun needs in
        `recipient-variables` (a campaign's batch form shrinks by what its template ignores)."""
        wanted = self.placeholders
        return {k: v for k, v in variables.items() if k in wanted}

    def personalise(self, variables: Mapping[str, str]) -> RenderedEmail:
        """The message one recipient gets (what Mailgun makes of it), subject length checked."""
        return RenderedEmail(
            subject=self.subject_for(variables),
            html=substitute(self.html, variables),
            text=substitute(self.text, variables),
        )

    def subject_for(self, variables: Mapping[str, str]) -> str:
        """One recipient's subject; FailedPreconditionError (TEMPLATE_RENDER_FAILED) if their
        values make it longer than `MAX_SUBJECT_CHARS` (check each recipient before sending)."""
        subject = substitute(self.subject, variables)
        if len(subject) > MAX_SUBJECT_CHARS:
            raise _render_failed("subject", _RenderLimitError("the subject is too long"))
        return subject


@dataclass(frozen=True)
class CompiledTemplate:
    """A checked template, ready to render for any recipient."""

    spec: TemplateSpec
    digest: str
    _subject: jinja2.Template = field(repr=False, compare=False)
    _html: jinja2.Template | None = field(repr=False, compare=False)
    _text: jinja2.Template = field(repr=False, compare=False)

    def render(self, ctx: RecipientContext) -> RenderedEmail:
        """The message for `ctx`, with the CAN-SPAM footer (sender's name and postal address,
        unsubscribe link) appended to both parts whatever the template says. Raises
        FailedPreconditionError (TEMPLATE_RENDER_FAILED) if a part fails for this recipient.

        The HTML and text parts render with the recipient's values. The subject renders as in a
        batch: the template's own text is made one line, then the (one-line) values go in, so a
        value never joins or splits the template's words and a batch's subject is the same."""
        variables = ctx.variables()
        own = recipient_variables(ctx)
        subject = self._batch_subject(ctx.company_name, ctx.company_address)
        html = ""
        if self._html is not None:
            html = _with_html_footer(
                self._part("html", self._html, variables),
                _footer_html(ctx.company_name, ctx.company_address, variables["unsubscribe_url"]),
            )
        text = self._part("text", self._text, variables) + _footer_text(
            ctx.company_name, ctx.company_address, variables["unsubscribe_url"]
        )
        return RenderedEmail(
            subject=BatchRendering(subject, "", "").subject_for(own), html=html, text=text
        )

    def render_batch(self, company_name: str, company_address: str) -> BatchRendering:
        """Every part rendered once, the recipient variables as Mailgun placeholders (see
        `BatchRendering`), footers included. Exact because `validate_template` lets a template
        only print a recipient variable as it is. Raises FailedPreconditionError
        (TEMPLATE_RENDER_FAILED) if a part fails, or if the output holds `%recipient` text of
        its own (the company's details, say), which Mailgun would take for a placeholder."""
        subject = self._batch_subject(company_name, company_address)
        html = ""
        placeholders = _placeholders(company_name, company_address, html=False)
        blanks = _blanks(company_name, company_address)
        if self._html is not None:
            url = Markup("%recipient.unsubscribe_url{}%").format(HTML_SUFFIX)
            html = _with_html_footer(
                self._part(
                    "html", self._html, _placeholders(company_name, company_address, html=True)
                ),
                _footer_html(company_name, company_address, url),
            )
            bare = self._part("html", self._html, blanks)
            bare += _footer_html(company_name, company_address, "")
            if _has_placeholder_text(bare):
                raise _render_failed("html", _RenderLimitError(_PLACEHOLDER_TEXT))
        text = self._part("text", self._text, placeholders) + _footer_text(
            company_name, company_address, "%recipient.unsubscribe_url%"
        )
        bare = self._part("text", self._text, blanks) + _footer_text(
            company_name, company_address, ""
        )
        if _has_placeholder_text(bare):
            raise _render_failed("text", _RenderLimitError(_PLACEHOLDER_TEXT))
        return BatchRendering(subject=subject, html=html, text=text)

    def _batch_subject(self, company_name: str, company_address: str) -> str:
        subject = _collapse(
            self._part(
                "subject", self._subject, _placeholders(company_name, company_address, html=False)
            )
        )
        bare = self._part("subject", self._subject, _blanks(company_name, company_address))
        if _has_placeholder_text(bare):
            raise _render_failed("subject", _RenderLimitError(_PLACEHOLDER_TEXT))
        return subject

    @staticmethod
    def _part(name: str, template: jinja2.Template, variables: dict[str, str]) -> str:
        try:
            return _render(template, variables)
        except Exception as e:
            raise _render_failed(name, e) from e


def _render_failed(part: str, exc: BaseException) -> FailedPreconditionError:
    return FailedPreconditionError(
        f"the template's {part} did not render: {_describe(exc)}",
        reason=TEMPLATE_RENDER_FAILED,
        metadata={"part": part},
    )


def template_digest(spec: TemplateSpec) -> str:
    """A content hash of the parts that render (not the name): the template cache's key."""
    h = hashlib.sha256()
    for part in (spec.subject, spec.html, spec.text):
        data = part.encode()
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def validate_template(spec: TemplateSpec, prefix: str = "template.") -> CompiledTemplate:
    """Checks a template as it is saved: sizes, that each part compiles, and that it renders
    against `sample_context()`. Raises InvalidArgumentError (INVALID_TEMPLATE) with one
    violation per bad field (`template.name`, `template.subject`, `template.html_body`,
    `template.text_body`). Compiled templates are cached by content (`compile_template`)."""
    violations: list[FieldViolation] = []
    if not spec.name.strip():
        violations.append(FieldViolation(f"{prefix}name", "is required"))
    elif len(spec.name) > MAX_NAME_CHARS:
        violations.append(
            FieldViolation(f"{prefix}name", f"must be at most {MAX_NAME_CHARS} characters")
        )
    parts = (
        ("subject", "subject", spec.subject, MAX_SUBJECT_SOURCE_CHARS, True),
        ("html", "html_body", spec.html, MAX_BODY_SOURCE_CHARS, False),
        ("text", "text_body", spec.text, MAX_BODY_SOURCE_CHARS, True),
    )
    sample = sample_context().variables()
    for part, path, source, limit, required in parts:
        problem = _part_problem(part, source, limit, required, sample)
        if problem:
            violations.append(FieldViolation(f"{prefix}{path}", problem))
    if violations:
        raise InvalidArgumentError(
            "the template is not valid", reason=TEMPLATE_INVALID, violations=violations
        )
    return compile_template(spec)


def _part_problem(
    part: str, source: str, limit: int, required: bool, sample: dict[str, str]
) -> str | None:
    if not source.strip():
        return "is required" if required else None
    if len(source) > limit:
        return f"must be at most {limit} characters"
    env = _HTML_ENV if part == "html" else _PLAIN_ENV
    try:
        problem = _recipient_use_problem(env.parse(source))
        if problem:
            return problem
        rendered = _render(_compile_part(env, source), sample)
    except Exception as e:
        return _describe(e)
    if _has_placeholder_text(rendered):
        return _PLACEHOLDER_TEXT
    if part == "subject" and len(_collapse(rendered)) > MAX_SUBJECT_CHARS:
        return f"renders longer than {MAX_SUBJECT_CHARS} characters"
    return None


@functools.lru_cache(maxsize=TEMPLATE_CACHE_SIZE)
def _compile_cached(digest: str, spec: TemplateSpec) -> CompiledTemplate:
    return CompiledTemplate(
        spec=spec,
        digest=digest,
        _subject=_compile_part(_PLAIN_ENV, spec.subject),
        _html=_compile_part(_HTML_ENV, spec.html) if spec.html.strip() else None,
        _text=_compile_part(_PLAIN_ENV, spec.text),
    )


def compile_template(spec: TemplateSpec) -> CompiledTemplate:
    """The compiled template of a stored (already validated) spec, from an LRU cache keyed by
    its content hash, so an edited template never renders from a stale entry. Raises
    jinja2.TemplateSyntaxError for a template that does not compile."""
    return _compile_cached(template_digest(spec), spec)


def clear_template_cache() -> None:
    _compile_cached.cache_clear()


# --- The adverse-action notice (transactional) -------------------------------------------------


@dataclass(frozen=True)
class CreditBureau:
    """The consumer reporting agency whose report the decision used (FCRA § 615(a))."""

    name: str
    address: str
    phone: str
    website: str = ""


@dataclass(frozen=True)
class Creditor:
    """Who took the action, and the federal agency that oversees its ECOA compliance."""

    name: str
    address: str
    regulator_name: str = "Federal Trade Commission"
    regulator_address: str = (
        "Federal Trade Commission, Equal Credit Opportunity, Washington, DC 20580"
    )


def decline_reasons(score_band: str) -> list[str]:
    """The principal reasons of a decline, from what the credit decision recorded: the score
    band when it is under the program's minimum (500), else the program's other eligibility
    rules (the age rule declines whatever the score). To be reviewed by counsel."""
    low = score_band.split("-", 1)[0].strip()
    if low.isdigit() and int(low) < 500:
        return [
            f"Credit score ({score_band}) below the minimum this program requires",
            "Limited or delinquent credit history on your credit report",
        ]
    return ["You do not meet this program's eligibility requirements"]


def adverse_action_notice(
    *,
    first_name: str,
    creditor: Creditor,
    bureau: CreditBureau,
    reasons: Sequence[str],
    decided_on: dt.date,
    credit_score: int | None = None,
    score_range: tuple[int, int] | None = None,
    score_factors: Sequence[str] = (),
) -> RenderedEmail:
    """The notice owed to an applicant whose credit request was declined based in part on a
    credit report: the action and its principal reasons (ECOA / Regulation B), the bureau's
    name, address and phone, that the bureau did not make the decision, the right to a free
    copy of the report within 60 days and to dispute it (FCRA § 615(a)), the score used when
    there is one, and the ECOA anti-discrimination statement. Transactional: no unsubscribe
    link, and it is sent whatever the recipient's marketing preferences. The wording should be
    reviewed by counsel before it is used."""
    if not reasons:
        raise ValueError("an adverse-action notice needs at least one principal reason")
    on = f"{decided_on:%B} {decided_on.day}, {decided_on.year}"
    sections: list[tuple[str, list[str]]] = [
        (
            "",
            [
                f"Dear {first_name or 'Applicant'},",
                f"Thank you for your application of {on} with "
                f"{creditor.name}. We are unable to approve your request for credit at this "
                "time.",
            ],
        ),
        ("The principal reasons for our decision", [f"- {r}" for r in reasons]),
        (
            "Your credit report",
            [
                "Our decision was based in whole or in part on information obtained in a report "
                "from the consumer reporting agency listed below. The agency did not make this "
                "decision and is unable to tell you the specific reasons for it.",
                bureau.name,
                bureau.address,
                f"Phone: {bureau.phone}",
                *([f"Website: {bureau.website}"] if bureau.website else []),
                "You have the right under the Fair Credit Reporting Act to obtain a free copy "
                "of your report from this agency if you ask for it within 60 days of receiving "
                "this notice. You also have the right to dispute with the agency the accuracy "
                "or completeness of any information in your report.",
            ],
        ),
    ]
    if credit_score is not None:
        score_lines = [f"Your credit score: {credit_score}"]
        if score_range:
            score_lines.append(f"Scores range from {score_range[0]} to {score_range[1]}.")
        if score_factors:
            score_lines.append("Key factors that affected your score:")
            score_lines.extend(f"- {f}" for f in score_factors)
        sections.append(("Your credit score", score_lines))
    sections.append(
        (
            "Notice under the Equal Credit Opportunity Act",
            [
                "The federal Equal Credit Opportunity Act prohibits creditors from "
                "discriminating against credit applicants on the basis of race, color, "
                "religion, national origin, sex, marital status, or age (provided the applicant "
                "has the capacity to enter into a binding contract); because all or part of "
                "the applicant's income derives from any public assistance program; or because "
                "the applicant has in good faith exercised any right under the Consumer Credit "
                "Protection Act. The federal agency that administers compliance with this law "
                f"concerning this creditor is: {creditor.regulator_address}.",
            ],
        )
    )
    sections.append(("", [creditor.name, creditor.address]))

    text_blocks = []
    html_blocks = []
    for heading, lines in sections:
        block = "\n".join(lines)
        text_blocks.append(f"{heading}\n{block}" if heading else block)
        if heading:
            html_blocks.append(Markup("<h3>{}</h3>").format(heading))
        items = [line for line in lines if line.startswith("- ")]
        prose = [line for line in lines if not line.startswith("- ")]
        for line in prose:
            html_blocks.append(Markup("<p>{}</p>").format(line))
        if items:
            lis = Markup("").join(Markup("<li>{}</li>").format(i[2:]) for i in items)
            html_blocks.append(Markup("<ul>{}</ul>").format(lis))
    html = Markup("<html><body>\n{}\n</body></html>\n").format(Markup("\n").join(html_blocks))
    return RenderedEmail(
        subject=_collapse(f"About your credit application with {creditor.name}"),
        html=str(html),
        text="\n\n".join(text_blocks) + "\n",
    )


__all__ = [
    "HTML_SUFFIX",
    "MAX_RENDERED_CHARS",
    "RECIPIENT_VARIABLES",
    "TEMPLATE_INVALID",
    "TEMPLATE_RENDER_FAILED",
    "VARIABLES",
    "BatchRendering",
    "CompiledTemplate",
    "CreditBureau",
    "Creditor",
    "RecipientContext",
    "RenderedEmail",
    "TemplateSpec",
    "adverse_action_notice",
    "clear_template_cache",
    "compile_template",
    "decline_reasons",
    "default_opening_line",
    "recipient_variables",
    "sample_context",
    "substitute",
    "template_digest",
    "validate_template",
]
