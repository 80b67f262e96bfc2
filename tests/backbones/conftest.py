"""Shared fixtures of the backbone tests: ``fake_hf_cache`` lives in tests/conftest.py (also used by the
feature-stage and CLI tests)."""
