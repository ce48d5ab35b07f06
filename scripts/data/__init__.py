"""Data generators: test-data/, the compatibility corpus, bench-data/ (benchmark.py imports the file names)."""
