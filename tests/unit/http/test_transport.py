"""What both transports share (``http.transport``): the User-Agent."""

from __future__ import annotations

from autoenhance_provider import __version__
from autoenhance_provider.http.transport import user_agent


def test_user_agent_names_the_provider_and_airflow():
    from importlib.metadata import version

    ua = user_agent()
    assert ua.startswith(f"airflow-provider-autoenhance/{__version__} ")
    assert f"apache-airflow/{version('apache-airflow')}" in ua
    assert "python-requests/" in ua
    assert f"python-aiohttp/{version('aiohttp')}" in user_agent("aiohttp")
