"""`make test` for a contributor who is not root: the e2e tests' system prerequisites.

Redis, Chromium (with chromedriver) and PostgreSQL's server binaries are installed with apt-get
when they are missing and the machine allows it (root, or passwordless sudo). When it does not,
the tests that need them are skipped with one line saying what is missing and how to get it;
under ``CI=true`` they fail instead, so CI never silently runs less.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parents[1] / "e2e"


@pytest.fixture
def stack_module(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(E2E))
    import run_celery_stack

    # a machine with nothing installed and no way to install it
    monkeypatch.setattr(run_celery_stack.shutil, "which", lambda name: None)
    monkeypatch.setattr(run_celery_stack, "_pg_bin", lambda: None)
    monkeypatch.setattr(run_celery_stack, "_importable", lambda module: True)
    return run_celery_stack


def e2e_conftest():
    spec = importlib.util.spec_from_file_location("e2e_conftest_under_test", E2E / "conftest.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_packages_that_cannot_be_installed_are_named_in_one_line(stack_module) -> None:
    with pytest.raises(stack_module.MissingPrerequisite) as missing:
        stack_module.ensure_prerequisites()
    message = str(missing.value)
    assert "\n" not in message
    for package in ["redis-server", "chromium", "chromium-driver", "postgresql"]:
        assert package in message
    assert "sudo apt-get install" in message


def test_without_ci_the_test_is_skipped(stack_module, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    conftest = e2e_conftest()
    with pytest.raises(pytest.skip.Exception) as skipped:
        conftest.installed(stack_module.ensure_prerequisites)
    assert str(skipped.value.msg).startswith("e2e: missing system packages")


def test_under_ci_the_test_fails_instead(stack_module, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    conftest = e2e_conftest()
    with pytest.raises(stack_module.MissingPrerequisite):
        conftest.installed(stack_module.ensure_browser)


@pytest.mark.parametrize("hook", ["pytest_fixture_setup", "pytest_runtest_call"])
@pytest.mark.parametrize("ci", ["", "true"])
def test_the_rule_holds_where_a_test_or_fixture_calls_ensure_itself(
    stack_module, monkeypatch: pytest.MonkeyPatch, hook: str, ci: str
) -> None:
    """tests/e2e/conftest.py wraps every fixture set-up and test call of the e2e folder."""
    monkeypatch.setenv("CI", ci)
    wrapper = getattr(e2e_conftest(), hook)
    calls = wrapper(None, None) if hook == "pytest_fixture_setup" else wrapper(None)
    next(calls)  # up to the yield: pytest runs the fixture or the test here
    missing = stack_module.MissingPrerequisite("missing system packages redis-server")
    expected = stack_module.MissingPrerequisite if ci else pytest.skip.Exception
    with pytest.raises(expected):
        calls.throw(missing)
