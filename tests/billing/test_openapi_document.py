"""The OpenAPI document is one a client generator can use (issue #16 item 6): valid OpenAPI 3.1, a description on
every schema, property and operation, a summary and a tag on every operation, statuses and types as enums, and
`Idempotency-Key` declared on every POST; and openapi-python-client turns it into a client that works against a
real `billing serve`."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from billing.config import Settings
from billing.invoices import states as invoice_states
from billing.subscriptions import states as subscription_states
from tests.billing.live import create_merchant, serve, suite_env
from tests.conftest import Servers

OPERATIONS = ("get", "post", "put", "patch", "delete")
# Properties whose values are a closed set and must be listed as an enum, by schema.
CLOSED_SETS = {
    "Invoice": ["status", "collection_method"],
    "InvoiceLine": ["type"],
    "Subscription": ["status", "collection_method"],
    "SubscriptionUsage": ["status"],
    "TestClock": ["status"],
    "Payment": ["status"],
    "Refund": ["status"],
    "CreditNote": ["status"],
    "WebhookEndpoint": ["status"],
    "PaymentMethod": ["type", "status"],
    "DunningCase": ["state"],
    "Feature": ["type"],
    "Meter": ["aggregation"],
    "Plan": ["interval"],
    "Coupon": ["duration"],
    "ErrorDetail": ["type"],
    "HealthStatus": ["status"],
    "CustomerList": ["object"],
    "Wallet": ["status"],
    "WalletTransaction": ["kind", "status"],
}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in OPERATIONS
    ]


def _values(schema: dict[str, Any], schemas: dict[str, Any]) -> set[Any]:
    """The values an enum-like schema allows (enum, const, through $ref and oneOf/anyOf), or empty."""
    if "$ref" in schema:
        return _values(schemas[schema["$ref"].rsplit("/", 1)[1]], schemas)
    found: set[Any] = set(schema.get("enum", []))
    if "const" in schema:
        found.add(schema["const"])
    for part in schema.get("oneOf", []) + schema.get("anyOf", []):
        found |= _values(part, schemas)
    return found


async def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


async def test_every_schema_and_property_has_a_description(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert len(schemas) > 150
    missing = [name for name, schema in schemas.items() if not schema.get("description")]
    assert missing == []
    missing = [
        f"{name}.{key}"
        for name, schema in schemas.items()
        for key, prop in (schema.get("properties") or {}).items()
        if not prop.get("description")
    ]
    assert missing == [], missing
    # The shared words do not hide a schema's own: an email keeps its Meta description, a status its own word.
    customer = schemas["CustomerCreate"]["properties"]
    assert customer["email"]["description"] == "An email address; invoices and payment reminders go there."
    assert customer["email"]["examples"] == ["li.wei@example.com"]
    assert schemas["Customer"]["description"] == "A customer as the API returns it."


async def test_every_list_says_what_it_holds(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    lists = {
        name: schema
        for name, schema in schemas.items()
        if name.endswith("List") and "data" in schema["properties"]
    }
    assert len(lists) > 15
    for name, schema in lists.items():
        assert schema["properties"]["data"]["items"] == {
            "$ref": f"#/components/schemas/{name[: -len('List')]}"
        }


async def test_every_operation_has_a_summary_a_description_or_tag_and_error_answers(
    document: dict[str, Any],
) -> None:
    tags = {tag["name"]: tag["description"] for tag in document["tags"]}
    for method, path, operation in _operations(document):
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert operation.get("tags"), where
        for tag in operation["tags"]:
            assert tags.get(tag), f"{where}: tag {tag} is not described"
        if path.startswith("/v1/"):
            assert "400" in operation["responses"] and "401" in operation["responses"], where
    # The error answers show a real error, not generated noise.
    error = document["paths"]["/v1/customers"]["post"]["responses"]["400"]["content"]["application/json"]
    assert "examples" in error
    (example,) = error["examples"].values()
    assert example["value"]["error"]["type"] == "invalid_request_error"
    assert example["value"]["error"]["param"] == "custmer"


async def test_every_post_declares_the_idempotency_key_header(document: dict[str, Any]) -> None:
    posts = [(path, operation) for method, path, operation in _operations(document) if method == "post"]
    assert len(posts) > 40
    for path, operation in posts:
        headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
        declared = [p for p in headers if p["name"] == "Idempotency-Key"]
        assert len(declared) == 1, path
        assert declared[0]["required"] is False
        assert declared[0]["description"]
    # Declared once for all, except where a route says more about it (the credit note's refund).
    customers = document["paths"]["/v1/customers"]["post"]["parameters"]
    (shared,) = [p for p in customers if p["name"] == "Idempotency-Key"]
    assert shared["schema"] == {"type": "string", "minLength": 1, "maxLength": 255}
    assert "24 hours" in shared["description"]
    # Only POSTs: a GET has nothing to repeat safely.
    for method, path, operation in _operations(document):
        if method != "post":
            names = [p["name"] for p in operation.get("parameters", [])]
            assert "Idempotency-Key" not in names, f"{method} {path}"


async def test_statuses_and_types_are_enums(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert _values(schemas["Invoice"]["properties"]["status"], schemas) == {
        "draft",
        "open",
        "paid",
        "void",
        "uncollectible",
    }
    assert _values(schemas["Subscription"]["properties"]["status"], schemas) == {
        "trialing",
        "active",
        "past_due",
        "unpaid",
        "paused",
        "canceled",
        "incomplete",
        "incomplete_expired",
    }
    assert _values(schemas["Meter"]["properties"]["aggregation"], schemas) == {
        "count",
        "sum",
        "max",
        "last",
        "unique_count",
        "avg",
    }
    for name, keys in CLOSED_SETS.items():
        for key in keys:
            values = _values(schemas[name]["properties"][key], schemas)
            assert values, f"{name}.{key} is not an enum"
            assert all(isinstance(v, str) for v in values), f"{name}.{key}: {values}"


async def test_the_enums_hold_every_value_the_database_allows(document: dict[str, Any]) -> None:
    """The API's lists of statuses are the state machines' (a status the API cannot name would break clients)."""
    schemas = document["components"]["schemas"]
    assert _values(schemas["Invoice"]["properties"]["status"], schemas) == set(invoice_states.STATUSES)
    assert _values(schemas["Subscription"]["properties"]["status"], schemas) == set(
        subscription_states.STATUSES
    )


GENERATOR_CONFIG = """\
content_type_overrides:
  application/pdf: application/octet-stream
  text/csv: application/octet-stream
"""


@pytest.mark.timeout(300)
def test_a_generated_client_creates_a_customer_and_lists_invoices(
    settings: Settings, servers: Servers, tmp_path: Path
) -> None:
    """openapi-python-client generates a package from the served document; the package, imported, talks to a
    real `billing serve` (about 20 s: the server's start and the generator)."""
    env = suite_env(settings, servers.redis_url)
    key = create_merchant(env, "Generated client")["secret_key"]
    with serve(env) as url:
        (tmp_path / "openapi.json").write_bytes(httpx.get(f"{url}/schema/openapi.json", timeout=30).content)
        (tmp_path / "config.yaml").write_text(GENERATOR_CONFIG)
        tool = shutil.which("openapi-python-client", path=os.path.dirname(sys.executable))
        assert tool is not None, "openapi-python-client is in the dev extras"
        generated = subprocess.run(
            [
                tool,
                "generate",
                "--path",
                "openapi.json",
                "--config",
                "config.yaml",
                "--meta",
                "none",
                "--output-path",
                "billing_client",
            ],
            cwd=tmp_path,
            env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert generated.returncode == 0, generated.stdout + generated.stderr
        sys.path.insert(0, str(tmp_path))
        try:
            _use_the_client(url, key)
        finally:
            sys.path.remove(str(tmp_path))
            for name in [m for m in sys.modules if m == "billing_client" or m.startswith("billing_client.")]:
                del sys.modules[name]


def _use_the_client(url: str, key: str) -> None:
    client_module = importlib.import_module("billing_client")
    models = importlib.import_module("billing_client.models")
    create_customer = importlib.import_module("billing_client.api.customers.v1_customers_create")
    create_invoice = importlib.import_module("billing_client.api.invoices.v1_invoices_create")
    list_invoices = importlib.import_module("billing_client.api.invoices.v1_invoices_list")

    with client_module.AuthenticatedClient(base_url=url, token=key) as client:
        request = models.CustomerCreate(email="li.wei@example.com", name="Li Wei")
        idempotency_key = str(uuid.uuid4())
        first = create_customer.sync_detailed(client=client, body=request, idempotency_key=idempotency_key)
        assert first.status_code == 200, first.content
        customer = first.parsed
        assert isinstance(customer, models.Customer)
        assert customer.id.startswith("cus_")
        assert customer.email == "li.wei@example.com"
        assert customer.balance == 0
        # The declared header works through the client: the same key gives back the same customer.
        again = create_customer.sync_detailed(client=client, body=request, idempotency_key=idempotency_key)
        assert again.status_code == 200 and again.parsed.id == customer.id

        line = models.LineCreate(description="Setup fee", amount=12_000)
        created = create_invoice.sync_detailed(
            client=client,
            body=models.InvoiceCreate(customer=customer.id, currency="CNY", lines=[line]),
            idempotency_key=str(uuid.uuid4()),
        )
        assert created.status_code == 200, created.content
        invoice = created.parsed
        assert isinstance(invoice, models.Invoice)

        page = list_invoices.sync(client=client, customer=customer.id)
        assert isinstance(page, models.InvoiceList)
        assert page.has_more is False
        assert [i.id for i in page.data] == [invoice.id]
        listed = page.data[0]
        assert listed.status == models.InvoiceStatus.DRAFT
        assert listed.currency == "CNY"
        assert listed.total == 12_000
        assert [(li.description, li.amount, li.type_) for li in listed.lines] == [
            ("Setup fee", 12_000, models.InvoiceLineType.ADJUSTMENT)
        ]

        # An error comes back as the documented error model.
        unknown = list_invoices.sync_detailed(client=client, customer="cus_none", limit=500)
        assert unknown.status_code == 400
        assert isinstance(unknown.parsed, models.ErrorBody)
        assert unknown.parsed.error.type_ == models.ErrorDetailType.INVALID_REQUEST_ERROR
        assert unknown.parsed.error.param == "limit"
