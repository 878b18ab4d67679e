"""The async transport (``http.aio``): the proxy read from the environment, one client per event loop."""

from __future__ import annotations


# ------------------------------------------------------------------------------ proxy (async client)
def test_the_async_proxy_is_read_from_the_environment_as_requests_reads_it(monkeypatch):
    from autoenhance_provider.http.aio import Proxy

    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    assert Proxy.from_environment("https://api.autoenhance.ai") == Proxy()

    monkeypatch.setenv("HTTPS_PROXY", "http://corp%40user:s3cr%2Ft@proxy.corp:3128")
    proxy = Proxy.from_environment("https://api.autoenhance.ai")
    assert proxy.url == "http://proxy.corp:3128"
    assert proxy.headers == {"Authorization": "Basic Y29ycEB1c2VyOnMzY3IvdA=="}  # corp@user:s3cr/t
    assert "s3cr" not in repr(proxy)
    assert "Basic" not in repr(proxy)

    monkeypatch.setenv("NO_PROXY", ".autoenhance.ai")
    assert Proxy.from_environment("https://api.autoenhance.ai") == Proxy()
