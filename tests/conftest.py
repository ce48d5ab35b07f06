"""Shared fixtures live in tests/support/ so each suite can import them by name."""

pytest_plugins = [
    "support.fixtures",
    "support.galaxy_fixture",
    "support.deployments",
    "support.container_fixture",
    "support.pulsar_fixture",
    "support.browser_fixture",
    "support.galaxy_stand_in",
    "support.multi",
]
