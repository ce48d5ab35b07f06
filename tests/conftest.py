"""Shared fixtures live in tests/support/ so each suite can import them by name."""

pytest_plugins = [
    "support.fixtures",
]
