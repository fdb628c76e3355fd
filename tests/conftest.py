"""Shared fixtures. (The shared test helpers are the tests/helpers_*.py modules, importable from
every test file: pytest puts tests/ on sys.path.)"""
