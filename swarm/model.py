"""Names shared by the configuration, the stack file loader, the node scripts and the components.

Kept in one small module of plain values so that the configuration does not import the script
or loader modules for a constant (and the loader does not import the configuration for one).
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Overlay networks get /24s from this pool. Docker's default (10.0.0.0/8) overlaps every
# 10.x VPC; this narrower pool only collides with a VPC inside 10.0.0.0/16, which the config
# refuses.
SWARM_ADDRESS_POOL = "10.0.0.0/16"

# Images of the official postgres image (any registry, tag or digest): what swarm:backups backs up
# and whose data directory must be on a volume.
POSTGRES_IMAGE = re.compile(r"(^|/)postgres(:|@|$)")

# Every node of a GPU pool carries this label, so services can constrain on it.
GPU_LABEL = ("gpu", "true")
# The generic resource kind GPU nodes advertise (docs/gpus-and-catalogue.md).
GPU_KIND = "GPU"


class Folder(NamedTuple):
    """A bind-mount source on a node: created when missing; owner and mode set when declared."""

    path: str  # absolute
    owner: str | None = None  # user[:group], names or numeric ids, as chown takes it
    mode: str | None = None  # octal, as chmod takes it, e.g. "0750"


def service_name(stack: str, service: str) -> str:
    """A stack file service's name in swarm, as `docker stack deploy` names it."""
    return f"{stack}_{service}"
