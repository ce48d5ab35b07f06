"""Galaxy dynamic job rules of the local test Galaxy (galaxy.yml's `rules_module`)."""
