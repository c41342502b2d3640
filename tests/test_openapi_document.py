"""docs/openapi.yaml: valid OpenAPI 3.1, what tools/openapi.py writes today, and faithful to the
contract: every HTTP rule, every documented error reason and every proto field name is in it.
The checks read the descriptor set themselves rather than trusting the generator's reading."""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator

from server.transport import policy

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "openapi.yaml"
EXAMPLES = ROOT / "docs" / "openapi-examples.yaml"
DESCRIPTOR = ROOT / "envoy" / "ccl.binpb"

GRPC_CODES_TO_HTTP = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
}


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ccl_openapi_tool", ROOT / "tools" / "openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def document() -> dict[str, Any]:
    return yaml.safe_load(DOCUMENT.read_text())  # type: ignore[no-any-return]


@cache
def descriptor() -> descriptor_pb2.FileDescriptorSet:
    assert annotations_pb2.http
    return descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR.read_bytes())


def ccl_files() -> list[descriptor_pb2.FileDescriptorProto]:
    return [f for f in descriptor().file if f.package.startswith("ccl.")]


def method_comments() -> dict[str, str]:
    """RPC name -> its leading comment."""
    out = {}
    for f in ccl_files():
        for loc in f.source_code_info.location:
            path = tuple(loc.path)
            if len(path) == 4 and path[0] == 6 and path[2] == 2:
                out[f.service[path[1]].method[path[3]].name] = loc.leading_comments
    return out


def bindings(rule: http_pb2.HttpRule) -> list[tuple[str, str]]:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        return []
    found = [(kind, getattr(rule, kind))] if kind != "custom" else []
    if kind == "custom":
        found = [(rule.custom.kind.lower(), rule.custom.path)]
    for extra in rule.additional_bindings:
        found += bindings(extra)
    return found


def operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (path, method, operation)."""
    return {
        op["operationId"]: (path, method, op)
        for path, item in document()["paths"].items()
        for method, op in item.items()
    }


def test_the_document_is_valid_openapi_3_1() -> None:
    errors = list(OpenAPIV31SpecValidator(document()).iter_errors())
    assert errors == []
    assert document()["openapi"].startswith("3.1.")


def test_regenerating_gives_the_committed_document() -> None:
    assert generator().generate() == DOCUMENT.read_text(), "run `make generate`"


def test_every_http_rule_has_its_path_and_method() -> None:
    expected = set()
    for f in ccl_files():
        for service in f.service:
            for method in service.method:
                rule = method.options.Extensions[annotations_pb2.http]
                for verb, template in bindings(rule):
                    path = re.sub(r"\{([^}=]+)(=[^}]*)?\}", r"{\1}", template)
                    expected.add((path, verb, method.name))
    assert len(expected) >= 25
    found = {
        (path, method, op["operationId"])
        for path, item in document()["paths"].items()
        for method, op in item.items()
    }
    assert found == expected


def test_path_parameters_match_the_template_including_nested_and_custom_verbs() -> None:
    ops = operations()
    path, method, op = ops["UpdateDealer"]
    assert (path, method) == ("/api/dealers/{dealer.dealer_id}", "patch")
    names = {(p["name"], p["in"]) for p in op["parameters"]}
    assert ("dealer.dealer_id", "path") in names and ("update_mask", "query") in names
    assert ops["RedeliverPackage"][0] == "/api/deliveries/{delivery_id}:redeliver"
    for path, _, op in ops.values():
        in_path = set(re.findall(r"\{([^}]+)\}", path))
        assert in_path == {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}


def test_get_query_parameters_are_the_non_path_fields_nested_with_dots() -> None:
    ops = operations()
    list_leads = {p["name"] for p in ops["ListLeads"][2]["parameters"] if p["in"] == "query"}
    assert list_leads == {
        "page_size",
        "page_token",
        "status",
        "dealer_id",
        "created_after",
        "created_before",
        "source",
    }
    activity = {p["name"]: p["in"] for p in ops["ListLeadActivity"][2]["parameters"]}
    assert activity == {"lead_id": "path", "page_size": "query", "page_token": "query"}
    # A POST with `body: "*"` has no query parameters.
    assert "parameters" not in ops["ProcessLead"][2]


def test_every_documented_error_reason_is_listed_under_its_http_status() -> None:
    comments = method_comments()
    ops = operations()
    checked = 0
    for name, comment in comments.items():
        if name not in ops or "Errors:" not in comment:
            continue
        text = " ".join(comment.split("Errors:", 1)[1].split())
        responses = ops[name][2]["responses"]
        for code, inner in re.findall(r"\b([A-Z_]+) \(([^()]*)\)", text):
            status = str(GRPC_CODES_TO_HTTP[code])
            listed = responses[status]["x-ccl-error-reasons"]
            for reason in re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", inner):
                assert reason in listed, (name, code, reason)
                assert reason in responses[status]["description"]
                checked += 1
    assert checked >= 30


def test_common_errors_auth_and_not_built_operations() -> None:
    doc = document()
    assert set(doc["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader"}
    assert doc["components"]["securitySchemes"]["apiKeyHeader"]["name"] == "x-api-key"
    for name, (_, _, op) in operations().items():
        open_ = name in {"ReceiveMailgunEvent", "Unsubscribe", "GetUnsubscribePage"}
        assert (op.get("security") == []) is open_, name
        reasons = {r for x in op["responses"].values() for r in x.get("x-ccl-error-reasons", [])}
        assert ("API_KEY_MISSING" in reasons) is not open_, name
        assert ("403" in op["responses"]) is not open_, name
        not_built = name in {method.rsplit("/", 1)[1] for method in policy.NOT_BUILT}
        assert op.get("x-ccl-not-built", False) is not_built, name
        assert ("501" in op["responses"]) is not_built, name
        if not_built:
            assert "Not built yet" in op["description"]
        for status, response in op["responses"].items():
            if status != "200":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}


def test_schema_property_names_are_the_proto_field_names() -> None:
    schemas = document()["components"]["schemas"]
    checked = 0
    for f in [*ccl_files(), *[f for f in descriptor().file if f.package == "google.rpc"]]:
        todo = [(f".{f.package}", m) for m in f.message_type]
        while todo:
            scope, m = todo.pop()
            full = f"{scope}.{m.name}".lstrip(".")
            todo += [(f".{full}", n) for n in m.nested_type if not n.options.map_entry]
            if full not in schemas:
                assert f.package == "google.rpc", f"no schema for {full}"
                continue
            assert list(schemas[full]["properties"]) == [x.name for x in m.field], full
            checked += 1
        for e in f.enum_type:
            full = f"{f.package}.{e.name}"
            if full in schemas:
                assert schemas[full]["enum"] == [v.name for v in e.value]
    assert checked >= 60


def test_well_known_types_follow_proto3_json() -> None:
    schemas = document()["components"]["schemas"]
    lead = schemas["ccl.lead.v1.Lead"]["properties"]
    assert lead["create_time"]["type"] == "string" and lead["create_time"]["format"] == "date-time"
    income = schemas["ccl.lead.v1.LeadInput"]["properties"]["monthly_income_cents"]
    assert income["type"] == "string" and income["format"] == "int64"
    mask = schemas["ccl.dealer.v1.UpdateDealerRequest"]["properties"]["update_mask"]
    assert mask["type"] == "string"
    status = schemas["ccl.lead.v1.LeadStatus"]
    assert status["type"] == "string" and "LEAD_STATUS_DELIVERED" in status["enum"]
    cap = schemas["ccl.dealer.v1.Dealer"]["properties"]["daily_cap"]
    assert "Optional" in cap["description"]


def test_descriptions_come_from_proto_comments() -> None:
    schemas = document()["components"]["schemas"]
    assert schemas["ccl.lead.v1.Address"]["description"] == "A postal address in the United States."
    assert (
        "Required on a lead"
        in schemas["ccl.lead.v1.Address"]["properties"]["street"]["description"]
    )
    op = operations()["GetLead"][2]
    assert op["summary"] == "Returns one lead"


def with_components(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "components": document()["components"]}


def test_every_example_is_valid_against_its_schema_and_names_its_status() -> None:
    overlays = yaml.safe_load(EXAMPLES.read_text())
    count = 0
    for name, (_, _, op) in operations().items():
        wanted = set(overlays.get(name, {}).get("examples", {}))
        found: set[str] = set()
        for param in op.get("parameters", []):
            for key, example in param.get("examples", {}).items():
                OAS31Validator(with_components(param["schema"])).validate(example["value"])
                found.add(key)
        for content in op.get("requestBody", {}).get("content", {}).values():
            for key, example in content.get("examples", {}).items():
                OAS31Validator(with_components(content["schema"])).validate(example["value"])
                assert str(example["x-expected-status"]) in op["responses"], (name, key)
                found.add(key)
        assert found == wanted, name
        count += len(found)
    assert count >= 30


def test_examples_for_an_unknown_operation_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "examples.yaml"
    bad.write_text("NoSuchRpc:\n  examples: {}\n")
    with pytest.raises(ValueError, match="NoSuchRpc"):
        generator().generate(examples=bad)
