"""One Galaxy, every destination: the cellxgene tools' jobs go where their user asks.

scripts/galaxy.sh with GALAXY_CELLXGENE_DESTINATION=by-user maps every cellxgene tool to a dynamic
environment that calls this rule (Galaxy's job mapper passes `user_email`, and the environment's
own parameters `container_user` and `pulsar_user`). The test suites then run each scenario on the
container or Pulsar destination by acting as that user, on the Galaxy the other tests use, instead
of starting a Galaxy per destination.
"""

from __future__ import annotations


def cellxgene_by_user(user_email: str | None, container_user: str, pulsar_user: str) -> str:
    """The environment id for this job: `container`, `pulsar`, or `local` for everyone else."""
    return {container_user: "container", pulsar_user: "pulsar"}.get(user_email or "", "local")
