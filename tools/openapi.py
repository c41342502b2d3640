"""Writes docs/openapi.yaml: the OpenAPI 3.1 description of the REST surface exactly as Envoy's
grpc_json_transcoder serves it, generated from the descriptor set (envoy/ccl.binpb, which keeps
the proto comments) and merged with the hand-written request examples in
docs/openapi-examples.yaml.

Run it as `python tools/openapi.py` (`make generate` does, after `buf build`). The output is
deterministic: the same descriptor and examples always give the same bytes.

What the document follows, from envoy/envoy.yaml.tmpl and the server:
- JSON names are the proto field names (`preserve_proto_field_names`); every field without
  presence is printed, zero or not (`always_print_primitive_fields`); enums are printed as
  their names (input also takes their numbers); int64 is a string and Timestamp an RFC 3339
  string (proto3 JSON); unknown query parameters are refused (`reject_unknown_query_parameters`).
- Errors are a `google.rpc.Status` as JSON (`code`, `message`, `details` with an `ErrorInfo`
  and, for bad input, a `BadRequest`), with the HTTP status Envoy maps the gRPC code to. A body
  or query the transcoder cannot parse is refused before the server with a plain-text 400.
- Auth: `Authorization: Bearer <key>` or `x-api-key: <key>` (server/transport/interceptors.py);
  the operations `server/transport/policy.py` marks signature-verified take no key, and the
  roles of each operation come from the same policy.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `server` importable
    sys.path.insert(0, str(ROOT))

from google.api import annotations_pb2, http_pb2  # noqa: E402  (registers google.api.http)
from google.protobuf import descriptor_pb2  # noqa: E402

from server.transport import policy  # noqa: E402

DESCRIPTOR = ROOT / "envoy" / "ccl.binpb"
EXAMPLES = ROOT / "docs" / "openapi-examples.yaml"
OUTPUT = ROOT / "docs" / "openapi.yaml"

# The RPCs that answer UNIMPLEMENTED (HTTP 501, NOT_IMPLEMENTED) today are policy.NOT_BUILT
# (README "State today"; server/transport/servicers/{campaign,chat}.py).
# tests/e2e/test_openapi_examples.py checks that exactly these answer 501.

# google.rpc.Code -> the HTTP status Envoy's transcoder answers with (convert_grpc_status).
HTTP_STATUS = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

F = descriptor_pb2.FieldDescriptorProto
SCALARS: dict[int, dict[str, Any]] = {
    F.TYPE_DOUBLE: {"type": ["number", "string"], "format": "double"},
    F.TYPE_FLOAT: {"type": ["number", "string"], "format": "float"},
    F.TYPE_INT64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    F.TYPE_UINT64: {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"},
    F.TYPE_SINT64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    F.TYPE_FIXED64: {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"},
    F.TYPE_SFIXED64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    F.TYPE_INT32: {"type": "integer", "format": "int32"},
    F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    F.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    F.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0},
    F.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0},
    F.TYPE_BOOL: {"type": "boolean"},
    F.TYPE_STRING: {"type": "string"},
    F.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
INT64_NOTE = "A 64-bit integer: a decimal string in JSON (proto3 JSON); input also takes a number."

# Well-known types, inlined the way proto3 JSON writes them.
WELL_KNOWN: dict[str, dict[str, Any]] = {
    ".google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "An RFC 3339 time, for example `2026-11-29T14:05:00Z` (output in UTC).",
    },
    ".google.protobuf.Duration": {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
        "description": "A duration in seconds with an `s` suffix, for example `1.5s`.",
    },
    ".google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths, for example `daily_cap,active` "
        "(lowerCamelCase paths are accepted too).",
    },
    ".google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    ".google.protobuf.Struct": {"type": "object"},
    ".google.protobuf.Value": {},
    ".google.protobuf.ListValue": {"type": "array"},
    ".google.protobuf.Any": {
        "type": "object",
        "required": ["@type"],
        "properties": {"@type": {"type": "string"}},
    },
}
WRAPPERS = {
    "DoubleValue": F.TYPE_DOUBLE,
    "FloatValue": F.TYPE_FLOAT,
    "Int64Value": F.TYPE_INT64,
    "UInt64Value": F.TYPE_UINT64,
    "Int32Value": F.TYPE_INT32,
    "UInt32Value": F.TYPE_UINT32,
    "BoolValue": F.TYPE_BOOL,
    "StringValue": F.TYPE_STRING,
    "BytesValue": F.TYPE_BYTES,
}
for _name, _type in WRAPPERS.items():
    WELL_KNOWN[f".google.protobuf.{_name}"] = {
        **SCALARS[_type],
        "description": "A wrapped value: the bare value in JSON, or null/absent when unset.",
    }
HTTP_BODY = ".google.api.HttpBody"
WELL_KNOWN[HTTP_BODY] = {
    "description": "The raw request body (its bytes and content type), not JSON of this message."
}
# The google.rpc messages an error body carries in `details`.
ERROR_DETAILS = ("google.rpc.ErrorInfo", "google.rpc.BadRequest")

ERROR_SCHEMA = "Error"
PARSE_ERROR_TEXT = (
    "Envoy's transcoder could not read the request (malformed JSON, a value of the wrong type, "
    "an unknown enum name, an unknown query parameter): a plain-text message, before the "
    "server is reached."
)
REASON_RE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
ERRORS_RE = re.compile(r"\b([A-Z][A-Z_]+)\s+\(([^()]*)\)")


def load_descriptor(path: Path = DESCRIPTOR) -> descriptor_pb2.FileDescriptorSet:
    assert annotations_pb2.http  # the import registers the extension the parser needs
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


def clean_comment(text: str) -> str:
    """A proto comment as Markdown: one leading space off each line, line breaks kept."""
    lines = [line[1:] if line.startswith(" ") else line for line in text.split("\n")]
    return "\n".join(line.rstrip() for line in lines).strip()


def parse_errors(comment: str) -> list[tuple[str, str, list[str]]]:
    """The "Errors:" line of an RPC comment as (gRPC code, its text, the reasons it names)."""
    _, found, rest = comment.partition("Errors:")
    if not found:
        return []
    return [
        (code, " ".join(inner.split()), REASON_RE.findall(inner))
        for code, inner in ERRORS_RE.findall(rest)
    ]


class Contract:
    """The descriptor set indexed by full name, with each element's comment."""

    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.files = list(fds.file)
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.comments: dict[tuple[str, tuple[int, ...]], str] = {}
        self.paths: dict[str, tuple[str, tuple[int, ...]]] = {}
        for f in self.files:
            for loc in f.source_code_info.location:
                if loc.leading_comments:
                    self.comments[(f.name, tuple(loc.path))] = clean_comment(loc.leading_comments)
            for i, m in enumerate(f.message_type):
                self._add_message(f, f".{f.package}", m, (4, i))
            for i, e in enumerate(f.enum_type):
                self._add_enum(f, f".{f.package}", e, (5, i))

    def _add_message(
        self,
        f: descriptor_pb2.FileDescriptorProto,
        scope: str,
        m: descriptor_pb2.DescriptorProto,
        path: tuple[int, ...],
    ) -> None:
        name = f"{scope}.{m.name}"
        self.messages[name] = m
        self.paths[name] = (f.name, path)
        for i, nested in enumerate(m.nested_type):
            self._add_message(f, name, nested, (*path, 3, i))
        for i, e in enumerate(m.enum_type):
            self._add_enum(f, name, e, (*path, 4, i))

    def _add_enum(
        self,
        f: descriptor_pb2.FileDescriptorProto,
        scope: str,
        e: descriptor_pb2.EnumDescriptorProto,
        path: tuple[int, ...],
    ) -> None:
        name = f"{scope}.{e.name}"
        self.enums[name] = e
        self.paths[name] = (f.name, path)

    def comment(self, name: str, *sub: int) -> str:
        file, path = self.paths[name]
        return self.comments.get((file, (*path, *sub)), "")

    def services(
        self,
    ) -> list[
        tuple[descriptor_pb2.FileDescriptorProto, int, descriptor_pb2.ServiceDescriptorProto]
    ]:
        return [
            (f, i, s)
            for f in self.files
            if f.package.startswith("ccl.")
            for i, s in enumerate(f.service)
        ]


def schema_name(full_name: str) -> str:
    return full_name.lstrip(".")


def ref(full_name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{schema_name(full_name)}"}


def field_schema(contract: Contract, field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
    """The JSON schema of one field's value (an array for a repeated field)."""
    map_entry = None
    if field.type == F.TYPE_MESSAGE:
        entry = contract.messages.get(field.type_name)
        if entry is not None and entry.options.map_entry:
            map_entry = entry
    if map_entry is not None:
        value = field_schema(contract, map_entry.field[1])
        return {"type": "object", "additionalProperties": value}
    if field.type == F.TYPE_MESSAGE:
        item = dict(WELL_KNOWN.get(field.type_name) or ref(field.type_name))
        item.pop("description", None)
    elif field.type == F.TYPE_ENUM:
        item = ref(field.type_name)
    else:
        item = dict(SCALARS[field.type])
    if field.label == F.LABEL_REPEATED:
        return {"type": "array", "items": item}
    return item


def field_description(contract: Contract, owner: str, index: int) -> str:
    field = contract.messages[owner].field[index]
    parts = [contract.comment(owner, 2, index)]
    if field.type in (F.TYPE_INT64, F.TYPE_UINT64, F.TYPE_SINT64, F.TYPE_FIXED64, F.TYPE_SFIXED64):
        parts.append(INT64_NOTE)
    if field.type == F.TYPE_MESSAGE and field.type_name in WELL_KNOWN:
        parts.append(WELL_KNOWN[field.type_name].get("description", ""))
    if field.proto3_optional:
        parts.append("Optional: omitted from responses when unset.")
    return "\n\n".join(p for p in parts if p)


def message_schema(contract: Contract, full_name: str) -> dict[str, Any]:
    m = contract.messages[full_name]
    properties: dict[str, Any] = {}
    for i, field in enumerate(m.field):
        prop = field_schema(contract, field)
        description = field_description(contract, full_name, i)
        if description:
            prop = {**prop, "description": description}
        if field.options.deprecated:
            prop["deprecated"] = True
        properties[field.name] = prop
    schema: dict[str, Any] = {"type": "object"}
    description = contract.comment(full_name)
    for i in range(len(m.oneof_decl)):
        members = [f for f in m.field if f.HasField("oneof_index") and f.oneof_index == i]
        if len(members) == 1 and members[0].proto3_optional:
            continue  # the synthetic oneof of an `optional` field
        names = [f.name for f in members]
        description += "\n\nAt most one of " + ", ".join(f"`{n}`" for n in names) + "."
    if description.strip():
        schema["description"] = description.strip()
    schema["properties"] = properties
    if full_name.startswith(".ccl."):
        # The server prints only these names; unknown input fields are dropped by Envoy.
        schema["additionalProperties"] = False
    return schema


def enum_schema(contract: Contract, full_name: str) -> dict[str, Any]:
    e = contract.enums[full_name]
    lines = []
    for i, v in enumerate(e.value):
        text = contract.comment(full_name, 2, i)
        deprecated = " (deprecated)" if v.options.deprecated else ""
        lines.append(f"- `{v.name}` ({v.number}){deprecated}: {text}")
    description = contract.comment(full_name)
    description += (
        "\n\nThe value's name in JSON output; input also accepts the number.\n\n" + "\n".join(lines)
    )
    return {
        "type": "string",
        "description": description.strip(),
        "enum": [v.name for v in e.value],
    }


def error_schemas(contract: Contract) -> dict[str, Any]:
    """The error body (google.rpc.Status as the transcoder prints it) and its details."""
    schemas: dict[str, Any] = {}
    one_of = []
    for name in ERROR_DETAILS:
        detail = f"{name}Detail"
        schemas[detail] = {
            "description": f"A `{name}` packed in `details` (an `Any`: `@type` and its fields).",
            "allOf": [
                ref(f".{name}"),
                {
                    "type": "object",
                    "required": ["@type"],
                    "properties": {"@type": {"const": f"type.googleapis.com/{name}"}},
                },
            ],
            "unevaluatedProperties": False,
        }
        one_of.append(ref(f".{detail}"))
    schemas[ERROR_SCHEMA] = {
        "type": "object",
        "description": (
            "Every error the server answers, as Envoy's transcoder prints its "
            "`google.rpc.Status`. `details` holds a `google.rpc.ErrorInfo` (domain `ccl`, an "
            "UPPER_SNAKE `reason`, `metadata.request_id`; `metadata.incident_id` for an "
            "INTERNAL error) and, for bad input, a `google.rpc.BadRequest` with one field "
            "violation per bad field (`lead.email`, `lead.address.zip_code`, ...)."
        ),
        "required": ["code", "message", "details"],
        "properties": {
            "code": {
                "type": "integer",
                "format": "int32",
                "description": "The gRPC status code (`google.rpc.Code`), for example 3 "
                "for INVALID_ARGUMENT.",
            },
            "message": {"type": "string", "description": "What went wrong, for a person."},
            "details": {"type": "array", "items": {"oneOf": one_of}},
        },
        "additionalProperties": False,
    }
    return schemas


def referenced(contract: Contract, roots: list[str]) -> set[str]:
    """Every message and enum reachable from the roots (full names)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name in WELL_KNOWN or name == HTTP_BODY:
            continue
        seen.add(name)
        for f in contract.messages[name].field if name in contract.messages else []:
            entry = contract.messages.get(f.type_name)
            if entry is not None and entry.options.map_entry:
                f = entry.field[1]
            if f.type in (F.TYPE_MESSAGE, F.TYPE_ENUM):
                todo.append(f.type_name)
    return seen


def http_rules(rule: http_pb2.HttpRule) -> list[tuple[str, str, http_pb2.HttpRule]]:
    """(method, path template, rule) of a rule and its additional bindings."""
    kind = rule.WhichOneof("pattern")
    if kind is None:
        return []
    if kind == "custom":
        method, template = rule.custom.kind.lower(), rule.custom.path
    else:
        method, template = kind, getattr(rule, kind)
    out = [(method, template, rule)]
    for extra in rule.additional_bindings:
        out.extend(http_rules(extra))
    return out


PATH_VAR = re.compile(r"\{([^}=]+)(=[^}]*)?\}")


def openapi_path(template: str) -> tuple[str, list[str]]:
    """The OpenAPI path and its variables (`{dealer.dealer_id}` stays a dotted name)."""
    names = [m.group(1) for m in PATH_VAR.finditer(template)]
    return PATH_VAR.sub(lambda m: "{" + m.group(1) + "}", template), names


def resolve_field(
    contract: Contract, message: str, dotted: str
) -> tuple[str, int, descriptor_pb2.FieldDescriptorProto]:
    """The message owning the last field of a dotted path, its index, and the field."""
    owner, field = message, None
    parts = dotted.split(".")
    for n, part in enumerate(parts):
        m = contract.messages[owner]
        index = [f.name for f in m.field].index(part)
        field = m.field[index]
        if n < len(parts) - 1:
            owner = field.type_name
    assert field is not None
    return owner, index, field


def query_parameters(
    contract: Contract, message: str, prefix: str, exclude: set[str], depth: int = 0
) -> list[dict[str, Any]]:
    """The transcoder's query parameters: every leaf field not bound to the path or body,
    nested message fields as `a.b`. Repeated scalars repeat the parameter."""
    params: list[dict[str, Any]] = []
    for i, field in enumerate(contract.messages[message].field):
        name = prefix + field.name
        if name in exclude or field.type_name == HTTP_BODY:
            continue
        if field.type == F.TYPE_MESSAGE and field.type_name not in WELL_KNOWN:
            if field.label == F.LABEL_REPEATED or depth > 4:
                continue
            params.extend(
                query_parameters(contract, field.type_name, name + ".", exclude, depth + 1)
            )
            continue
        schema = field_schema(contract, field)
        param: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
        description = field_description(contract, message, i)
        if description:
            param["description"] = description
        if field.label == F.LABEL_REPEATED:
            param["style"], param["explode"] = "form", True
        params.append(param)
    return params


def method_roles(full_method: str) -> list[str]:
    return sorted(r.value for r in policy.ROLES.get(full_method, frozenset()))


def error_responses(
    errors: list[tuple[str, str, list[str]]],
    *,
    authenticated: bool,
    has_body: bool,
    not_built: bool,
) -> dict[str, Any]:
    """The error responses of an operation: its documented reasons by HTTP status, the ones
    every operation may answer, and `default`."""
    by_status: dict[int, list[str]] = {}
    reasons: dict[int, list[str]] = {}

    def add(code: str, text: str, names: list[str]) -> None:
        status = HTTP_STATUS[code]
        by_status.setdefault(status, []).append(f"{code} ({text})")
        reasons.setdefault(status, [])
        reasons[status].extend(n for n in names if n not in reasons[status])

    for code, text, names in errors:
        add(code, text, names)
    add(
        "INVALID_ARGUMENT",
        "INVALID_CHARACTER: a text field holds a NUL character",
        ["INVALID_CHARACTER"],
    )
    if authenticated:
        add(
            "UNAUTHENTICATED",
            "API_KEY_MISSING, API_KEY_INVALID",
            ["API_KEY_MISSING", "API_KEY_INVALID"],
        )
        add(
            "PERMISSION_DENIED",
            "ROLE_NOT_ALLOWED: the key's role may not call this",
            ["ROLE_NOT_ALLOWED"],
        )
    if has_body:
        by_status.setdefault(413, []).append(
            "REQUEST_TOO_LARGE: the body is over `CCL_MAX_REQUEST_BYTES` (answered by Envoy, "
            "with `metadata.max_bytes`)"
        )
        reasons.setdefault(413, []).append("REQUEST_TOO_LARGE")
    if not_built:
        add("UNIMPLEMENTED", "NOT_IMPLEMENTED: not built yet", ["NOT_IMPLEMENTED"])
    error_content = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}
    }
    responses: dict[str, Any] = {}
    for status in sorted(by_status):
        content = dict(error_content)
        description = "; ".join(by_status[status]) + "."
        if status == 400:
            content["text/plain"] = {"schema": {"type": "string"}}
            description += " Or, as `text/plain`: " + PARSE_ERROR_TEXT
        responses[str(status)] = {
            "description": description,
            "x-ccl-error-reasons": reasons[status],
            "content": content,
        }
    responses["default"] = {
        "description": "Any other error: INTERNAL (500, reason INTERNAL with "
        "`metadata.incident_id`), UNAVAILABLE (503), RESOURCE_EXHAUSTED (429).",
        "content": error_content,
    }
    return responses


def build_operation(
    contract: Contract,
    service_name: str,
    method: descriptor_pb2.MethodDescriptorProto,
    comment: str,
    http_method: str,
    template: str,
    rule: http_pb2.HttpRule,
    overlay: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    path, path_vars = openapi_path(template)
    request = method.input_type
    full_method = f"/{service_name}/{method.name}"
    not_built = full_method in policy.NOT_BUILT
    authenticated = full_method not in policy.SIGNATURE_VERIFIED
    summary = " ".join(comment.split("\n\n")[0].split()).split(". ")[0].rstrip(".")
    description = comment
    if not_built:
        description = (
            "**Not built yet: answers 501 (`UNIMPLEMENTED`, reason `NOT_IMPLEMENTED`).**\n\n"
            + description
        )
    roles = method_roles(full_method)
    if authenticated:
        description += "\n\nRoles: " + ", ".join(f"`{r}`" for r in roles) + "."
    else:
        description += (
            "\n\nNo API key: the handler verifies the request itself (the provider's signature, "
            "or the signed token in the URL)."
        )
    op: dict[str, Any] = {
        "operationId": method.name,
        "summary": summary,
        "description": description,
        "tags": [service_name.split(".")[-1]],
    }
    if not_built:
        op["x-ccl-not-built"] = True
    if authenticated:
        op["x-ccl-roles"] = roles
    else:
        op["security"] = []
    params: list[dict[str, Any]] = []
    for var in path_vars:
        owner, index, field = resolve_field(contract, request, var)
        param: dict[str, Any] = {
            "name": var,
            "in": "path",
            "required": True,
            "schema": field_schema(contract, field),
        }
        text = field_description(contract, owner, index)
        if text:
            param["description"] = text
        params.append(param)
    body_field = rule.body
    bound = set(path_vars)
    if body_field == "*":
        bound = {f.name for f in contract.messages[request].field}
    elif body_field:
        bound.add(body_field)
    if http_method == "get" or body_field != "*":
        params.extend(query_parameters(contract, request, "", bound))
    for name, spec in sorted(overlay.get("headers", {}).items()):
        params.append({"name": name, "in": "header", **spec})
    has_body = bool(body_field)
    if has_body:
        if body_field == "*":
            schema: dict[str, Any] = ref(request)
            text = ""
        else:
            owner, index, field = resolve_field(contract, request, body_field)
            text = field_description(contract, owner, index)
            if field.type_name == HTTP_BODY:
                schema = overlay.get("body_schema", {})
            else:
                schema = field_schema(contract, field)
        media = overlay.get("media_type", "application/json")
        op["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
        if text:
            op["requestBody"]["description"] = text
    examples = overlay.get("examples", {})
    for example_name in sorted(examples):
        example = examples[example_name]
        common = {"summary": example["summary"], "x-expected-status": example["status"]}
        for param in params:
            location = {"path": "path", "query": "query", "header": "headers"}[param["in"]]
            values = example.get(location, {})
            if param["name"] in values:
                param.setdefault("examples", {})[example_name] = {
                    **common,
                    "value": values[param["name"]],
                }
        if "body" in example:
            content = next(iter(op["requestBody"]["content"].values()))
            content.setdefault("examples", {})[example_name] = {**common, "value": example["body"]}
    if params:
        op["parameters"] = params
    if method.output_type == HTTP_BODY:
        media = overlay.get("response_media_type", "text/html")
        response: dict[str, Any] = {
            "description": f"OK: the raw body, as `{media}`.",
            "content": {media: {"schema": {"type": "string"}}},
        }
    else:
        response = {
            "description": f"OK: a `{schema_name(method.output_type)}`.",
            "content": {"application/json": {"schema": ref(method.output_type)}},
        }
    errors = error_responses(
        parse_errors(comment),
        authenticated=authenticated,
        has_body=has_body,
        not_built=not_built,
    )
    # A status Envoy answers instead of another on this path (envoy/envoy.yaml.tmpl: the
    # Mailgun webhook's 400s are 406). The original stays listed: gRPC callers get its code.
    for original, status in sorted(overlay.get("rest_statuses", {}).items()):
        if str(original) in errors:
            moved = dict(errors[str(original)])
            moved["description"] = (
                f"Answered by Envoy instead of {original} on this path: " + moved["description"]
            )
            errors[str(status)] = moved
    op["responses"] = {"200": response, **dict(sorted(errors.items(), key=_status_order))}
    order = ["operationId", "summary", "description", "tags", "x-ccl-not-built", "x-ccl-roles"]
    order += ["security", "parameters", "requestBody", "responses"]
    return path, {key: op[key] for key in order if key in op}


def _status_order(item: tuple[str, Any]) -> tuple[int, str]:
    return (1, item[0]) if item[0] == "default" else (0, item[0])


INFO_DESCRIPTION = """\
The REST surface of the CCL Lead Platform as Envoy serves it: each operation is a gRPC method \
transcoded by Envoy's grpc_json_transcoder (the same methods answer over gRPC). Generated by \
`tools/openapi.py` from the protos (`envoy/ccl.binpb`); do not edit by hand.

- JSON names are the proto field names (`lead_id`); input also accepts lowerCamelCase \
(`leadId`). Unknown input fields are dropped. Responses print every field that has no \
presence, zero values included; message fields and `optional` fields that are unset are \
omitted.
- 64-bit integers (money in cents, counts) are decimal strings; times are RFC 3339 strings \
in UTC; enums are their names (input also takes their numbers).
- GET operations take the request's fields as query parameters (nested fields as `a.b`, \
repeated fields by repeating the parameter); an unknown query parameter is a 400.
- Errors: the HTTP status mapped from the gRPC code and a JSON `google.rpc.Status` \
(`Error`) whose `ErrorInfo.reason` is listed on each operation (`x-ccl-error-reasons`). \
Envoy itself answers a body or query it cannot parse with a plain-text 400.
- Auth: `Authorization: Bearer <key>` or `x-api-key: <key>`. Each operation lists the \
roles allowed (`x-ccl-roles`); dealer keys see only their own dealer's leads.
- Streaming RPCs (`LeadService/ImportLeads`, `ChatService/Converse`) are gRPC only.
"""


def build_document(
    fds: descriptor_pb2.FileDescriptorSet, overlays: dict[str, Any]
) -> dict[str, Any]:
    contract = Contract(fds)
    paths: dict[str, dict[str, Any]] = {}
    roots: list[str] = []
    tags = []
    used_overlays: set[str] = set()
    for f, s_index, service in contract.services():
        service_name = f"{f.package}.{service.name}"
        service_comment = contract.comments.get((f.name, (6, s_index)), "")
        tags.append({"name": service.name, "description": service_comment})
        for m_index, method in enumerate(service.method):
            rule = method.options.Extensions[annotations_pb2.http]
            comment = contract.comments.get((f.name, (6, s_index, 2, m_index)), "")
            for http_method, template, binding in http_rules(rule):
                overlay = overlays.get(method.name, {})
                used_overlays.add(method.name)
                path, op = build_operation(
                    contract,
                    service_name,
                    method,
                    comment,
                    http_method,
                    template,
                    binding,
                    overlay,
                )
                if http_method in paths.setdefault(path, {}):
                    raise ValueError(f"two operations for {http_method.upper()} {path}")
                paths[path][http_method] = op
                roots += [method.input_type, method.output_type]
    unknown = set(overlays) - used_overlays
    if unknown:
        raise ValueError(f"examples for operations that do not exist: {sorted(unknown)}")
    # Every message of ours (the streaming RPCs' too, for gRPC readers), and what they use.
    ours = [n for n in [*contract.messages, *contract.enums] if n.startswith(".ccl.")]
    names = referenced(contract, sorted(ours) + roots + [f".{n}" for n in ERROR_DETAILS])
    schemas: dict[str, Any] = {}
    for name in sorted(names):
        if name in contract.messages:
            schemas[schema_name(name)] = message_schema(contract, name)
        else:
            schemas[schema_name(name)] = enum_schema(contract, name)
    schemas.update(error_schemas(contract))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CCL Lead Platform REST API",
            "version": "v1",
            "description": INFO_DESCRIPTION,
        },
        "servers": [{"url": "http://127.0.0.1:8080", "description": "`make run` (Envoy)"}],
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
        "tags": sorted(tags, key=lambda t: t["name"]),
        "paths": {p: dict(sorted(paths[p].items())) for p in sorted(paths)},
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "apiKeyHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": "An API key (`ccl_<key id>_<secret>`).",
                },
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <API key>`.",
                },
            },
        },
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # every shared part written out in full: no `&id001` anchors


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(document: dict[str, Any]) -> str:
    header = (
        "# Generated by tools/openapi.py from envoy/ccl.binpb and docs/openapi-examples.yaml.\n"
    )
    header += "# Do not edit: run `make generate`.\n"
    body = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, indent=2
    )
    return header + body


def generate(descriptor: Path = DESCRIPTOR, examples: Path = EXAMPLES) -> str:
    overlays = yaml.safe_load(examples.read_text()) or {}
    return render(build_document(load_descriptor(descriptor), overlays))


def main() -> None:
    OUTPUT.write_text(generate())


if __name__ == "__main__":
    main()
