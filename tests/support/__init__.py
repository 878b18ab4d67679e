"""Helpers shared by the test directories, imported as ``support.<module>``.

``tests/`` is on ``sys.path`` during a run (pytest's default "prepend" import mode inserts the
directory of ``tests/conftest.py``), like ``free_ports`` and ``example_dags_support`` beside it.
Fixtures live in the ``conftest.py`` files; plain functions, classes and constants live here.
"""
