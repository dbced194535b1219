#!/bin/sh
# Fragment (see __init__.py): for the scripts that wait on this node's part as a manager (init,
# handover).
set -eu

# control_is true|false: whether this node's Docker answers as a manager (false while it restarts).
control_is() {
  [ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = "$1" ]
}
