"""Unit tests, laid out like the package: the tests of ``autoenhance_provider/<path>/<module>.py`` are in
``tests/unit/<path>/test_<module>.py`` (a module with many concerns may have several files,
``test_<module>_<concern>.py``); ``workflow/`` holds the tests that follow one scenario across modules.

The folders are packages so that files of the same name in two folders do not collide under pytest's
default import mode; shared helpers are in ``tests/support``, fixtures in ``tests/unit/conftest.py``.
"""
