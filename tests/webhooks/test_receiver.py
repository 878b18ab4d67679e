"""The receiver's HTTP contract: authentication, bodies, acknowledgements, duplicates and ordering."""

from __future__ import annotations

import json
import logging

import pytest

from autoenhance_provider.webhooks import MAX_BODY_BYTES, finished_order_ids, parse_event

from .conftest import SECRET


def image_processed(order_id: str = "order-1", image_id: str = "img-1", *, processing: bool = False) -> dict:
    return {
        "event": "image_processed",
        "image_id": image_id,
        "order_id": order_id,
        "error": False,
        "order_is_processing": processing,
    }


def post(client, body, *, token: str | bytes | None = SECRET, path: str = "/webhook", **headers):
    if token is not None:
        headers["Authorization"] = token
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(path, content=content, headers={"Content-Type": "application/json", **headers})


# --- authentication --------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [SECRET, f"Bearer {SECRET}", f"bearer {SECRET}", f"  Bearer   {SECRET}  "])
def test_raw_and_bearer_tokens_are_accepted(client, recorder, token):
    response = post(client, image_processed(), token=token)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "recorded", "event": "image_processed", "asset_events": 1}
    assert [event.order_id for _, event in recorder.events] == ["order-1"]


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "wrong-token",
        f"Bearer {SECRET}x",
        SECRET[:-1],
        f"Basic {SECRET}",
        f"Bearer{SECRET}",
        "Bearer ",
        "Bearer",
        "t\u00f6ken".encode("latin-1"),  # a non-ASCII header value
    ],
)
def test_missing_or_wrong_token_is_401_and_records_nothing(client, recorder, token):
    response = post(client, image_processed(), token=token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert recorder.events == []


def test_authentication_comes_before_the_body_is_read(client, recorder):
    """An unauthenticated sender cannot make the receiver read or parse anything."""
    assert post(client, b"x" * (MAX_BODY_BYTES + 1), token="nope").status_code == 401
    assert post(client, b"not json", token=None).status_code == 401
    assert post(client, b"", token=None).status_code == 401


def test_tokens_never_reach_the_log(client, recorder, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-5d1e0b9a"
    post(client, image_processed(), token=f"Bearer {wrong}")
    post(client, image_processed())
    post(client, image_processed(), token=f"Bearer {SECRET}")
    post(client, b"{", token=SECRET)
    recorder.fail = True
    post(client, image_processed(order_id="order-2"))
    out, err = capfd.readouterr()
    text = caplog.text + "".join(str(record.args) for record in caplog.records) + out + err
    assert "rejected a delivery with a wrong token" in caplog.text  # the rejection is logged ...
    assert "could not record order order-2" in caplog.text  # ... and so is the failure,
    assert SECRET not in text  # but never a token, right or wrong
    assert wrong not in text


def test_unknown_webhook_is_404(client, recorder):
    assert post(client, image_processed(), path="/webhook/other").status_code == 404  # no connection
    assert post(client, image_processed(), path="/webhook/Not_Valid").status_code == 404  # bad name
    assert post(client, image_processed(), path="/webhook/a/b").status_code == 404
    assert recorder.events == []


def test_webhook_without_a_secret_refuses_everything(recorder):
    """A connection without a password never means "no authentication"."""
    from fastapi.testclient import TestClient

    from .conftest import Secrets, make_app

    with TestClient(make_app(Secrets(values={"default": None}), recorder)) as client:
        for token in (None, "", "Bearer "):
            assert post(client, image_processed(), token=token).status_code == 404
    assert recorder.events == []


def test_named_webhook_uses_its_own_secret(client, secrets, recorder):
    secrets.values["agency-b"] = "other-secret"
    assert post(client, image_processed(), path="/webhook/agency-b", token=SECRET).status_code == 401
    response = post(client, image_processed(), path="/webhook/agency-b/", token="Bearer other-secret")
    assert response.status_code == 200
    assert recorder.events[0][0] == "agency-b"


def test_secret_is_cached_and_a_rotated_secret_applies_after_the_cache():
    from fastapi.testclient import TestClient

    from .conftest import Recorder, Secrets, make_app

    secrets, recorder = Secrets(), Recorder()
    with TestClient(make_app(secrets, recorder, secret_cache_seconds=3600)) as cached:
        for _ in range(5):
            assert post(cached, image_processed(), token="guess").status_code == 401
        assert secrets.lookups == 1  # failed guesses do not each cost a secrets-backend call
    secrets.values["default"] = "rotated"
    with TestClient(make_app(secrets, recorder, secret_cache_seconds=0)) as uncached:
        assert post(uncached, image_processed()).status_code == 401
        assert post(uncached, image_processed(), token="rotated").status_code == 200


def test_random_webhook_names_cost_bounded_lookups_and_memory(recorder):
    """Names in the URL are the sender's choice: a flood of random ones must not turn into a
    secrets-backend call each, nor lock out the webhooks that exist."""
    from fastapi.testclient import TestClient

    from .conftest import Secrets, make_app

    secrets = Secrets(values={"default": SECRET, "agency_b": "b-secret"})
    with TestClient(make_app(secrets, recorder, secret_cache_seconds=0)) as client:
        assert post(client, image_processed(), path="/webhook/agency_b", token="b-secret").status_code == 200
        lookups_before = secrets.lookups
        for number in range(200):
            assert post(client, image_processed(), path=f"/webhook/random{number}").status_code == 404
        assert secrets.lookups - lookups_before <= 30  # at most 30 new names a minute are looked up
        # Known webhooks are still looked up (every time here: no cache) and served.
        assert post(client, image_processed(), path="/webhook/agency_b", token="b-secret").status_code == 200
        assert post(client, image_processed()).status_code == 200
    assert len(recorder.events) == 3


def test_secret_cache_forgets_unknown_names_but_keeps_known_ones():
    from autoenhance_provider.webhooks.app import _SecretCache

    from .conftest import Secrets

    secrets = Secrets(values={"default": SECRET, "agency_b": "b"})
    cache = _SecretCache(3600, secrets, new_names_per_minute=10_000, max_unknown=10)
    assert cache.get("agency_b") == "b"
    for number in range(100):
        assert cache.get(f"random{number}") is None
    assert len(cache._entries) <= 11
    lookups = secrets.lookups
    assert cache.get("agency_b") == "b"
    assert secrets.lookups == lookups  # still cached


# --- bodies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"{", 400),
        (b"\xff\xfe", 400),
        (b'{"event": NaN}', 400),
        (b"[1, 2]", 422),
        (b'"image_processed"', 422),
        (b"{}", 422),
        (json.dumps({"event": 7}), 422),
        (json.dumps({"event": ""}), 422),
        (json.dumps({**image_processed(), "order_id": 42}), 422),
        (json.dumps({**image_processed(), "order_id": ""}), 422),
        (json.dumps({**image_processed(), "order_id": "../../etc"}), 422),
        (json.dumps({**image_processed(), "order_id": ".."}), 422),
        (json.dumps({**image_processed(), "order_id": "a\nb"}), 422),
        (json.dumps({**image_processed(), "order_id": "x" * 201}), 422),
        (json.dumps({k: v for k, v in image_processed().items() if k != "order_id"}), 422),
        (json.dumps({**image_processed(), "order_is_processing": "false"}), 422),
        (json.dumps({**image_processed(), "order_is_processing": 0}), 422),
        (json.dumps({k: v for k, v in image_processed().items() if k != "order_is_processing"}), 422),
        (json.dumps({**image_processed(), "error": "no"}), 422),
        (json.dumps({**image_processed(), "image_id": ["a"]}), 422),
        ("[" * 60_000, 400),  # nested too deeply for json: RecursionError, not a 500
    ],
)
def test_bad_bodies_are_4xx_and_record_nothing(client, recorder, body, status):
    response = post(client, body)
    assert response.status_code == status, response.text
    assert recorder.events == []


def test_body_over_the_limit_is_413(client, recorder):
    padded = json.dumps({**image_processed(), "pad": "x" * MAX_BODY_BYTES})
    assert post(client, padded).status_code == 413

    def chunks():  # no Content-Length: the limit holds while streaming too
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    response = client.post("/webhook", content=chunks(), headers={"Authorization": SECRET})
    assert response.status_code == 413
    assert recorder.events == []


def test_body_just_under_the_limit_is_accepted(client, recorder):
    body = json.dumps(image_processed()).encode()
    body += b" " * (MAX_BODY_BYTES - len(body))
    assert post(client, body).status_code == 200
    assert len(recorder.events) == 1


def test_unknown_fields_are_dropped_from_the_event(client, recorder):
    post(client, {**image_processed(), "injected": "x" * 1000})
    (_, event) = recorder.events[0]
    assert "injected" not in event.as_extra("default")
    assert event.as_extra("default") == {
        "source": "autoenhance_webhook",
        "webhook": "default",
        "event": "image_processed",
        "order_id": "order-1",
        "image_id": "img-1",
        "error": False,
        "order_is_processing": False,
    }


# --- acknowledgements -----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   \n"])
def test_empty_verification_post_is_204(client, recorder, body):
    response = post(client, body)
    assert response.status_code == 204
    assert response.content == b""
    assert recorder.events == []


@pytest.mark.parametrize(
    "body",
    [
        {"event": "webhook_updated"},
        {"event": "image_registered", "image_id": "img-1", "order_id": "order-1"},
        {"event": "something_new", "order_id": 5},
        image_processed(processing=True),
    ],
)
def test_other_events_are_acknowledged_without_an_asset_event(client, recorder, body):
    response = post(client, body)
    assert response.status_code == 200
    assert response.json() == {"status": "acknowledged", "event": body["event"], "asset_events": 0}
    assert recorder.events == []


def test_failed_image_still_finishes_the_order(client, recorder):
    post(client, {**image_processed(), "error": True})
    assert recorder.events[0][1].error is True
    assert recorder.events[0][1].order_finished


def test_database_failure_is_503_with_retry_after(client, recorder):
    recorder.fail = True
    response = post(client, image_processed())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"


def test_no_docs_or_schema_are_served(client):
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404
    assert client.get("/webhook").status_code == 405


# --- duplicates and ordering ----------------------------------------------------------------------


def test_deliveries_the_database_records_again_still_collapse_to_one_order(client, recorder):
    """Repeats are coalesced when recorded (test_record.py); should two API servers record the same
    repeat at once, consumers read orders through finished_order_ids, which lists each order once."""
    for _ in range(3):
        assert post(client, image_processed()).status_code == 200
    assert len(recorder.events) == 3
    extras = [{"extra": event.as_extra(webhook)} for webhook, event in recorder.events]
    assert finished_order_ids(extras) == ["order-1"]


def test_out_of_order_deliveries_mark_an_order_finished_only_by_its_last_image(client, recorder):
    """The 'finished' delivery of image 3 arrives before the 'still processing' ones of images 1-2:
    the order is finished once, and the late deliveries neither finish it again nor undo it."""
    deliveries = [
        image_processed("order-9", "img-3", processing=False),
        image_processed("order-9", "img-1", processing=True),
        image_processed("order-9", "img-2", processing=True),
        image_processed("order-8", "img-4", processing=True),
    ]
    for body in deliveries:
        assert post(client, body).status_code == 200
    assert [(event.order_id, event.image_id) for _, event in recorder.events] == [("order-9", "img-3")]


def test_finished_order_ids_ignores_events_that_are_not_a_finished_order():
    events = [
        {"extra": {"order_id": "a", "order_is_processing": False}},
        {"extra": {"order_id": "b", "order_is_processing": True}},
        {"extra": {"order_id": "../x", "order_is_processing": False}},
        {"extra": {"order_id": "{{ conn.autoenhance_default.password }}", "order_is_processing": False}},
        {"extra": {"order_id": "{% raw %}x{% endraw %}", "order_is_processing": False}},
        {"extra": {"order_is_processing": False}},
        {"extra": None},
        {"extra": {"order_id": "c", "order_is_processing": False}},
        {"extra": {"order_id": "a", "order_is_processing": False}},
    ]
    assert finished_order_ids(events) == ["a", "c"]


def test_parse_event_reads_the_documented_fields():
    event = parse_event(json.dumps(image_processed("o", "i", processing=True)).encode())
    assert event is not None
    assert (event.order_id, event.image_id, event.error, event.order_is_processing) == ("o", "i", False, True)
    assert not event.order_finished
    assert parse_event(b"") is None


# --- ids from outside are data: one strict rule ------------------------------------------------------

UNTRUSTED_IDS = [
    "{{ conn.autoenhance_default.password }}",
    "{{ conn.autoenhance_default.password|reverse }}",
    "{% for c in [1] %}x{% endfor %}",
    "{{7*7}}",
    "{#x#}",
    "order 1",
    "order\t1",
    "50%2F",
    "a#b",
    "\u5199" * 198,  # an asset URI of over 1,500 characters once quoted
    "order\ud800",  # a lone surrogate (valid JSON, not encodable text)
    " order-1",
    "-order",
]


@pytest.mark.parametrize("order_id", UNTRUSTED_IDS)
def test_an_id_outside_the_id_rule_is_422_naming_the_rule(client, recorder, order_id):
    response = post(client, json.dumps({**image_processed(), "order_id": order_id}))
    assert response.status_code == 422, response.text
    assert "letters, digits and _ - . : @ + ~" in response.json()["detail"]
    assert recorder.events == []


@pytest.mark.parametrize(
    "order_id", ["0f6b2f4e-8a51-4c51-9a0e-1d2b3c4d5e6f", "listing-42_2026.06", "crm:4711", "a@b+c~d", "_x"]
)
def test_uuids_and_sensible_client_ids_are_accepted(client, recorder, order_id):
    assert post(client, {**image_processed(), "order_id": order_id}).status_code == 200
    assert [event.order_id for _, event in recorder.events] == [order_id]


@pytest.mark.parametrize(
    "event", ["image_processed\ud800", "\ud800", "image processed", "x" * 101, "{{7*7}}"]
)
def test_an_event_name_that_is_not_a_name_is_422_not_500(client, recorder, event):
    response = post(client, json.dumps({**image_processed(), "event": event}))
    assert response.status_code == 422, response.text
    assert recorder.events == []


# --- tokens: compared as bytes, whitespace around either ignored --------------------------------------


def test_a_password_saved_with_surrounding_whitespace_matches_the_token(recorder):
    from fastapi.testclient import TestClient

    from .conftest import Secrets, make_app

    with TestClient(make_app(Secrets(values={"default": f" {SECRET} "}), recorder)) as client:
        assert post(client, image_processed(), token=SECRET).status_code == 200
        assert post(client, image_processed(), token=f"Bearer {SECRET}").status_code == 200
        assert post(client, image_processed(), token=f"{SECRET}x").status_code == 401


def test_a_non_ascii_password_matches_the_utf8_token_bytes(recorder):
    from fastapi.testclient import TestClient

    from .conftest import Secrets, make_app

    password = "w\u00e4bhook-s\u00e9cret-\u2603"
    with TestClient(make_app(Secrets(values={"default": password}), recorder)) as client:
        assert post(client, image_processed(), token=password.encode("utf-8")).status_code == 200
        assert post(client, image_processed(), token=b"Bearer " + password.encode("utf-8")).status_code == 200
        wrong = password.encode("utf-8")[:-1] + b"\x84"
        assert post(client, image_processed(), token=wrong).status_code == 401
    assert len(recorder.events) == 2


def test_a_blank_secret_never_matches():
    from autoenhance_provider.webhooks.app import token_matches

    assert not token_matches("", "   ")
    assert not token_matches("Bearer  ", " ")
    assert not token_matches("   ", "\t")


# --- lockout: webhooks that exist are never starved by random names -----------------------------------


def test_a_flood_of_random_names_never_locks_out_a_listed_webhook(recorder):
    """Right after a restart nothing has been looked up: a webhook whose connection exists is
    known from the connection list, so a flood of random names that spends the budget for unknown
    names (from the same client address) does not shut it out."""
    from fastapi.testclient import TestClient

    from .conftest import Secrets, make_app

    secrets = Secrets(values={"default": SECRET, "agency_b": "b-secret"})
    app = make_app(secrets, recorder, names=("agency_b",), secret_cache_seconds=0)
    served = []
    with TestClient(app) as client:
        for number in range(300):
            assert post(client, image_processed(), path=f"/webhook/random{number}").status_code == 404
            if number % 30 == 29:
                response = post(client, image_processed(), path="/webhook/agency_b", token="b-secret")
                served.append(response.status_code)
        assert secrets.lookups < 300 // 2  # the flood did exhaust the budget: most names were never looked up
    assert served == [200] * 10


def test_each_client_address_has_its_own_budget_for_unknown_names():
    """A webhook kept only in a secrets backend (not listable) is found after its first lookup;
    before that, it stays reachable from any client that is not the one flooding."""
    from autoenhance_provider.webhooks.app import _SecretCache

    from .conftest import Secrets

    secrets = Secrets(values={"default": SECRET, "vault_only": "v"})
    cache = _SecretCache(0, secrets, lambda: (), new_names_per_minute=5)
    for number in range(50):
        assert cache.get(f"random{number}", client="flooder") is None
    assert secrets.lookups == 5
    assert cache.get("vault_only", client="flooder") is None  # that client's budget is spent
    assert cache.get("vault_only", client="autoenhance") == "v"  # another client's is not
    assert cache.get("vault_only", client="flooder") == "v"  # and once found, it is known to all


def test_webhook_connections_are_listed_once_per_period_and_a_failed_listing_keeps_the_last():
    from autoenhance_provider.webhooks.app import _SecretCache

    from .conftest import Secrets

    listed = [["agency_b"]]
    calls = []

    def list_names():
        calls.append(1)
        if isinstance(listed[0], Exception):
            raise listed[0]
        return listed[0]

    secrets = Secrets(values={"default": SECRET, "agency_b": "b", "agency_c": "c"})
    cache = _SecretCache(0, secrets, list_names, names_ttl=3600, new_names_per_minute=0)
    assert cache.get("agency_b") == "b"
    assert cache.get("agency_c") is None  # not listed (yet), and no budget for unknown names here
    assert len(calls) == 1
    cache._listed_until = 0  # the period is over
    listed[0] = ["agency_b", "agency_c"]
    assert cache.get("agency_c") == "c"
    assert len(calls) == 2
    cache._listed_until, listed[0] = 0, RuntimeError("database is down")
    cache._found.clear()
    assert cache.get("agency_b") == "b"  # the last list still holds


def test_connection_ids_map_to_webhook_names():
    from autoenhance_provider.webhooks import webhook_conn_id, webhook_name

    assert webhook_name("autoenhance_webhook") == "default"
    assert webhook_name("AUTOENHANCE_WEBHOOK_AGENCY_B") == "agency_b"
    assert webhook_name("autoenhance_webhook_default") is None
    assert webhook_name("autoenhance_webhookx") is None
    assert webhook_name("autoenhance_default") is None
    for name in ("default", "agency_b", "eu-1"):
        assert webhook_name(webhook_conn_id(name)) == name


# --- failures: 503 only when the database is unavailable ----------------------------------------------


def test_a_fault_that_is_not_the_database_is_500_not_503(secrets, caplog):
    from fastapi.testclient import TestClient

    from .conftest import make_app

    def record(webhook, event):
        raise ValueError("a bug")

    with TestClient(make_app(secrets, record)) as client:
        response = post(client, image_processed())
    assert response.status_code == 500
    assert "retry-after" not in response.headers
    assert "a bug" not in response.text
