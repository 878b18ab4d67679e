"""6. Transport: plain http to a non-loopback host is refused by URL, before any connection; a
refusal from the storage or asset host is a storage error, not a bad API key.

The guard below records (and refuses) every name lookup or connection to anything but loopback,
so "refused before any connection" is checked directly and no traffic can leave the machine.
"""

from __future__ import annotations

import io

import pytest
from servers import (
    S3_ERROR_XML,
    Request,
    async_get_order,
    describe,
    fast_hook,
    head,
    json_reply,
    reply,
    run_bounded,
)

from autoenhance_provider.exceptions import AutoenhanceAuthError, AutoenhanceError, AutoenhanceStorageError
from support.images import jpeg_bytes

GUARD = 15
OFF_MACHINE = ["http://example.invalid/asset/x.jpg", "http://10.255.255.1/asset/x.jpg"]


def _redirect(location: str) -> list:
    return [head(302, [("Location", location)], length=0)]


class TestPlainHttpOffMachineIsRefused:
    @pytest.mark.parametrize("location", OFF_MACHINE)
    def test_api_redirect_sync(self, serve, connect, outside, location) -> None:
        conn = connect(serve(lambda r: _redirect(location)))
        outcome = run_bounded(lambda: fast_hook(conn).get_order("o-1"), GUARD)
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceError), describe(outcome)
        assert outside == [], f"the provider tried to reach {outside}"

    @pytest.mark.parametrize("location", OFF_MACHINE)
    def test_api_redirect_async(self, serve, connect, outside, location) -> None:
        conn = connect(serve(lambda r: _redirect(location)))
        outcome = run_bounded(lambda: async_get_order(conn), GUARD)
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceError), describe(outcome)
        assert outside == [], f"the provider tried to reach {outside}"

    @pytest.mark.parametrize("location", OFF_MACHINE)
    def test_download_redirect(self, serve, connect, outside, tmp_path, location) -> None:
        conn = connect(serve(lambda r: _redirect(location)))
        outcome = run_bounded(lambda: fast_hook(conn).download_image("img-1", tmp_path / "x.jpg"), GUARD)
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceError), describe(outcome)
        assert outside == [], f"the provider tried to reach {outside}"
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize("location", OFF_MACHINE)
    def test_download_indirect_url(self, serve, connect, outside, tmp_path, location) -> None:
        conn = connect(serve(lambda r: json_reply(200, {"url": location})))
        outcome = run_bounded(lambda: fast_hook(conn).download_image("img-1", tmp_path / "x.jpg"), GUARD)
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceError), describe(outcome)
        assert outside == [], f"the provider tried to reach {outside}"

    @pytest.mark.parametrize(
        "url",
        ["http://example.invalid/put?X-Amz-Signature=abc", "http://10.255.255.1/put?X-Amz-Signature=abc"],
    )
    def test_upload_to_plain_http_off_machine(self, serve, connect, outside, url) -> None:
        conn = connect(serve(lambda r: json_reply(200, {})))
        outcome = run_bounded(
            lambda: fast_hook(conn).upload_file(url, io.BytesIO(jpeg_bytes()), "image/jpeg"), GUARD
        )
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceError), describe(outcome)
        assert outside == [], f"the provider tried to reach {outside}"
        assert "X-Amz-Signature=abc" not in str(outcome.error)


class TestStorageRefusalIsNotAnAuthError:
    @staticmethod
    def _check(outcome) -> None:
        assert outcome.finished, describe(outcome)
        assert isinstance(outcome.error, AutoenhanceStorageError), describe(outcome)
        assert not isinstance(outcome.error, AutoenhanceAuthError), describe(outcome)
        message = str(outcome.error)
        assert "signed" in message.lower() or "storage" in message.lower(), message
        assert "API key" not in message, f"blames the API key for a storage refusal: {message}"

    @pytest.mark.parametrize("status", [401, 403])
    def test_presigned_put_refused(self, serve, connect, status) -> None:
        storage = serve(lambda r: reply(status, S3_ERROR_XML, "application/xml"))
        conn = connect(serve(lambda r: json_reply(200, {})))
        url = storage.url("/bucket/key.jpg?X-Amz-Signature=abc")
        self._check(
            run_bounded(
                lambda: fast_hook(conn).upload_file(url, io.BytesIO(jpeg_bytes()), "image/jpeg"), GUARD
            )
        )

    @pytest.mark.parametrize("status", [401, 403])
    def test_asset_host_after_download_redirect_refuses(self, serve, connect, tmp_path, status) -> None:
        storage = serve(lambda r: reply(status, S3_ERROR_XML, "application/xml"))
        asset = storage.url("/bucket/img-1.jpg?X-Amz-Signature=abc")
        conn = connect(serve(lambda r: _redirect(asset)))
        self._check(run_bounded(lambda: fast_hook(conn).download_image("img-1", tmp_path / "x.jpg"), GUARD))
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize("status", [401, 403])
    def test_asset_host_named_in_json_refuses(self, serve, connect, tmp_path, status) -> None:
        storage = serve(lambda r: reply(status, S3_ERROR_XML, "application/xml"))
        asset = storage.url("/bucket/img-1.jpg?X-Amz-Signature=abc")
        conn = connect(serve(lambda r: json_reply(200, {"url": asset})))
        self._check(run_bounded(lambda: fast_hook(conn).download_image("img-1", tmp_path / "x.jpg"), GUARD))

    def test_asset_host_serving_the_image_still_works(self, serve, connect, tmp_path) -> None:
        """Control: a redirect to a loopback asset host that answers is followed, without the key."""
        image = jpeg_bytes()

        def asset_app(request: Request):
            return reply(200, image, "image/jpeg")

        storage = serve(asset_app)
        conn = connect(serve(lambda r: _redirect(storage.url("/bucket/img-1.jpg"))))
        target = tmp_path / "x.jpg"
        outcome = run_bounded(lambda: fast_hook(conn).download_image("img-1", target), GUARD)
        assert outcome.finished, describe(outcome)
        assert outcome.error is None, describe(outcome)
        assert target.read_bytes() == image
        assert all("x-api-key" not in r.headers for r in storage.seen())


class TestProxyFromTheEnvironment:
    """The async hook reads the proxy as ``requests`` does (``HTTP(S)_PROXY``, ``NO_PROXY``), once."""

    @staticmethod
    def _get_order_async(conn: str):
        return run_bounded(lambda: async_get_order(conn), GUARD)

    def test_requests_go_through_the_proxy_with_its_credentials(
        self, serve, connect, outside, monkeypatch
    ) -> None:
        import base64

        proxy = serve(lambda r: json_reply(200, {"order_id": "o-1", "images": []}))
        monkeypatch.setenv("HTTP_PROXY", f"http://proxy%20user:p%40ss@127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # a host nobody can resolve here: only the proxy can reach it
        conn = connect("http://api.autoenhance.test", allow_insecure_http=True)

        outcome = self._get_order_async(conn)

        assert outcome.finished, describe(outcome)
        assert outcome.error is None, describe(outcome)
        assert outcome.value["order_id"] == "o-1"
        (seen,) = proxy.seen()
        assert seen.target == "http://api.autoenhance.test/v3/orders/o-1"
        assert seen.header("proxy-authorization") == "Basic " + base64.b64encode(b"proxy user:p@ss").decode()
        assert outside == [], f"the provider bypassed the proxy: {outside}"

    def test_no_proxy_sends_requests_directly(self, serve, connect, monkeypatch) -> None:
        proxy = serve(lambda r: json_reply(502, {"message": "the proxy must not be used"}))
        api = serve(lambda r: json_reply(200, {"order_id": "o-1", "images": []}))
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        conn = connect(api)

        outcome = self._get_order_async(conn)

        assert outcome.finished, describe(outcome)
        assert outcome.error is None, describe(outcome)
        assert proxy.seen() == []
        assert [r.path for r in api.seen()] == ["/v3/orders/o-1"]
