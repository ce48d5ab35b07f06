"""The benchmark's sections, one module each: `run(bench, datasets)` returns the section's rows."""
