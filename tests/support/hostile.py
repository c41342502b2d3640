"""Hostile inputs for property tests, derived from the contract itself.

Every request message is walked through its protobuf descriptor, so each string, enum, integer
and nested message of every RPC gets hostile values without a hand-kept list of fields (a field
added to a proto is fuzzed from then on):

- strings: lone surrogates (JSON only: protobuf cannot carry them), control characters, NUL,
  format and bidi characters, non-ASCII digits, and lengths just under and over every column
  size the storage uses;
- enums: every declared name, and numbers no version of the contract declares;
- integers: the edges of their wire type, and values past it (JSON only);
- Timestamps: RFC 3339 extremes and garbage;
- forged page tokens: base64url JSON of each token kind with hostile keys and values.
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf import message as proto_message
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

# Sizes of VARCHAR columns and validation limits, with their neighbours.
BOUNDARY_LENGTHS = [
    16, 17, 31, 32, 33, 63, 64, 65, 100, 101, 128, 129, 200, 201,
    255, 256, 320, 321, 500, 501, 1000, 1001, 2048, 2049, 10_001,
]  # fmt: skip
SPECIAL_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\r\n",
    "line\nbreak",
    "tab\there",
    "\u202eevil",
    "\ufeff",
    "\uff11\uff12\uff13\uff14\uff15",  # fullwidth digits
    "\u0666\u0662\u0667\u0660\u0661",  # Arabic-Indic digits
    "1985-W24-6",
    "19850614",
    "9999-12-31T23:59:59Z",
    "<script>x</script>",
    "javascript:alert(1)",
    "http://user:pass@h/\n",
    "=cmd|' /C calc'!A0",
    "'; DROP TABLE lead; --",
    "%00",
    "\\u0000",
]
ENUM_OUT_OF_RANGE = [-(2**31), -1, 99, 999, 2**31 - 1]
INT_EDGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
TIMESTAMPS = [
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "not a time",
]


def hostile_text(*, surrogates: bool) -> st.SearchStrategy[str]:
    """Strings a careless or hostile caller sends; lone surrogates only where JSON carries them.

    A third of the draws are the known troublemakers, a third sit at a column boundary."""
    categories = ["Cc", "Cf", "Zl", "Zp", "Zs", "Nd", "Co", "Lo"] + (["Cs"] if surrogates else [])
    specials = [s for s in SPECIAL_STRINGS if surrogates or _utf8(s)]
    return st.one_of(
        st.sampled_from(specials),
        st.builds(
            lambda unit, n: (unit * n)[:n],
            st.sampled_from(["x", "\u00e9", "ab", "\U0001d518", "\u0663", "\x01"]),
            st.sampled_from(BOUNDARY_LENGTHS),
        ),
        st.text(st.characters(categories=categories), max_size=24)  # type: ignore[arg-type]
        | st.text(max_size=24),
    )


def _utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_body(descriptor: Descriptor, depth: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON request body for `descriptor`, any subset of its fields set to hostile values."""
    return st.fixed_dictionaries(
        {},
        optional={f.name: json_value(f, depth) for f in descriptor.fields},
    )


def json_value(field: FieldDescriptor, depth: int = 3) -> st.SearchStrategy[Any]:
    single = _json_single(field, depth)
    if field.is_repeated:
        return st.lists(single, max_size=3)
    return single


def _json_single(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        name = field.message_type.full_name
        if name == "google.protobuf.Timestamp":
            return st.sampled_from(TIMESTAMPS) | hostile_text(surrogates=True)
        if name == "google.protobuf.FieldMask":  # JSON: comma-separated paths
            names = st.sampled_from([f.name for f in field.containing_type.fields])
            return st.lists(names | hostile_text(surrogates=True)).map(",".join)
        if depth <= 0 or name.startswith("google."):
            return st.just({})
        return json_body(field.message_type, depth - 1)
    if field.type == FieldDescriptor.TYPE_ENUM:
        names = [v.name for v in field.enum_type.values]
        return st.sampled_from(names) | st.sampled_from(ENUM_OUT_OF_RANGE)
    if field.type in INT_EDGES:
        low, high = INT_EDGES[field.type]
        return st.integers(low, high) | st.sampled_from([low, high, low - 1, high + 1, 2**70])
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=False, allow_infinity=False)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())
    return hostile_text(surrogates=True)


def message(cls: type[proto_message.Message], depth: int = 3) -> st.SearchStrategy[Any]:
    """A protobuf message of type `cls` with hostile values (for direct gRPC calls)."""
    descriptor = cls.DESCRIPTOR
    fields = {f.name: _proto_value(f, depth) for f in descriptor.fields}

    def build(values: dict[str, Any]) -> proto_message.Message:
        out = cls()
        for name, value in values.items():
            _set(out, descriptor.fields_by_name[name], value)
        return out

    return st.fixed_dictionaries({}, optional=fields).map(build)


def _proto_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    single = _proto_single(field, depth)
    if field.is_repeated:
        return st.lists(single, max_size=3)
    return single


def _proto_single(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        cls = _message_class(field.message_type)
        if field.message_type.full_name == "google.protobuf.Timestamp":
            return st.builds(
                cls,
                seconds=st.sampled_from([-62135596800, 0, 253402300799, 1_700_000_000]),
                nanos=st.sampled_from([0, 999_999_999]),
            )
        if depth <= 0 or field.message_type.full_name.startswith("google."):
            return st.builds(cls)
        return message(cls, depth - 1)
    if field.type == FieldDescriptor.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return st.sampled_from(numbers) | st.sampled_from(ENUM_OUT_OF_RANGE)
    if field.type in INT_EDGES:
        low, high = INT_EDGES[field.type]
        return st.integers(low, high) | st.sampled_from([low, high])
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    return hostile_text(surrogates=False)


def _message_class(descriptor: Descriptor) -> type[proto_message.Message]:
    return message_factory.GetMessageClass(descriptor)


# A well-formed token of each list, as the server issues them; forgeries change one value.
TOKEN_TEMPLATES: dict[str, dict[str, Any]] = {
    "leads": {
        "k": "leads",
        "t": "2026-01-01T00:00:00",
        "i": "00000000-0000-4000-8000-000000000000",
    },
    "activity": {"k": "activity", "i": 5},
    "dealers": {"k": "dealers", "n": "Dealer", "i": "00000000-0000-4000-8000-000000000000"},
    "dealer_deliveries": {
        "k": "dealer_deliveries",
        "t": "2026-01-01T00:00:00",
        "i": "00000000-0000-4000-8000-000000000000",
    },
}
_token_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.sampled_from([2**63, 2**70, -1, 1e308])
    | hostile_text(surrogates=True)
    | st.sampled_from([*TIMESTAMPS, "leads", "activity", "dealers"]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=4,
)


def _encode_token(document: dict[str, Any]) -> str:
    raw = json.dumps(document, separators=(",", ":")).encode()  # ASCII: \ud800 survives
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# What breaks a query when a token carries it: NUL and lone surrogates (PostgreSQL text, UTF-8),
# integers past BIGINT, and values of the wrong type.
TOKEN_POISON = ["a\x00b", "\ud800", "x\udfffy", 2**63, 2**70, -(2**70), -1, 1.5, True, None, [], {}]


@st.composite
def _forged(draw: st.DrawFn) -> dict[str, Any]:
    """A real token with one or two of its keys changed, dropped or added."""
    token = dict(TOKEN_TEMPLATES[draw(st.sampled_from(sorted(TOKEN_TEMPLATES)))])
    keys = st.one_of(st.sampled_from(sorted(token)), st.sampled_from(sorted(token)), st.just("x"))
    poison = st.sampled_from(TOKEN_POISON)
    values = st.one_of(poison, poison, hostile_text(surrogates=True), _token_values)
    for key in draw(st.lists(keys, min_size=1, max_size=2)):
        if draw(st.integers(0, 9)) == 0:
            token.pop(key, None)
        else:
            token[key] = draw(values)
    return token


def page_tokens() -> st.SearchStrategy[str]:
    """Forged page tokens (a real token of each list with values changed), and junk."""
    junk = st.text(max_size=64) | st.text(
        alphabet=string.ascii_letters + "0123456789-_=", max_size=64
    )
    huge = st.sampled_from(BOUNDARY_LENGTHS).map(lambda n: "A" * n)
    forged = _forged().map(_encode_token)
    return st.one_of(forged, forged, forged, junk, huge)


# --- mutations of a valid request: reach the database with one hostile value ------------------
# Random bodies are mostly refused by validation before any query runs; a valid request with one
# or two fields replaced is what finds a value that passes validation and breaks a column.


def field_paths(descriptor: Descriptor, depth: int = 3) -> list[tuple[FieldDescriptor, ...]]:
    """Every field path of a message, nested messages (not repeated, not google.*) walked."""
    paths: list[tuple[FieldDescriptor, ...]] = []
    for field in descriptor.fields:
        paths.append((field,))
        nested = field.message_type
        if (
            nested is not None
            and depth > 0
            and not field.is_repeated
            and not nested.full_name.startswith("google.")
        ):
            paths.extend((field, *rest) for rest in field_paths(nested, depth - 1))
    return paths


def mutated_json(descriptor: Descriptor, base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """`base` (a valid JSON request) with one or two field paths set to hostile values."""
    paths = field_paths(descriptor)
    if not paths:
        return st.just(base)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        body = json.loads(json.dumps(base))
        for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=2)):
            node = body
            for field in path[:-1]:
                child = node.get(field.name)
                node[field.name] = child = child if isinstance(child, dict) else {}
                node = child
            node[path[-1].name] = draw(json_value(path[-1], depth=1))
        return body

    return build()


def mutated_message(
    cls: type[proto_message.Message], base: dict[str, Any]
) -> st.SearchStrategy[proto_message.Message]:
    """`base` (a valid JSON request) as a message with one or two fields set to hostile values."""
    paths = field_paths(cls.DESCRIPTOR)
    if not paths:
        return st.just(json_format.ParseDict(base, cls()))

    @st.composite
    def build(draw: st.DrawFn) -> proto_message.Message:
        out = json_format.ParseDict(base, cls())
        for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=2)):
            node = out
            for field in path[:-1]:
                node = getattr(node, field.name)
            _set(node, path[-1], draw(_proto_value(path[-1], depth=1)))
        return out

    return build()


def _set(node: proto_message.Message, field: FieldDescriptor, value: Any) -> None:
    if field.is_repeated:
        container = getattr(node, field.name)
        del container[:]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value:
                container.add().CopyFrom(item)
        else:
            container.extend(value)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        getattr(node, field.name).CopyFrom(value)
    else:
        setattr(node, field.name, value)
