"""Support shared by tests/, the benchmarks and the load test (installed by scripts/setup-venv.sh).

    jobs        start the runtime as a Galaxy job does, ready when it registered and answers /health
    health      the one health probe, and the one deadline-bounded wait
    ui_client   speak to a cellxgene server the way its web client does
    galaxy_api  a small Galaxy API client (requests only: it also runs under Galaxy's own venv)
    signed_in   the Galaxy session a signed-in browser sends: UiClient sends it to viewers

Nothing is imported here, so `galaxy_api` stays importable where only requests is installed.
"""
