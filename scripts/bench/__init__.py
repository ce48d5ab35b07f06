"""scripts/benchmark.py's modules (issue 6), the load test (loadtest.py) and one-off measurements
(measure_*.py, screenshot_galaxy.py): run the scripts here by path, import the modules from scripts/."""
