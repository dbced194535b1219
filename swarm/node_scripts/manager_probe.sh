#!/bin/sh
# Run on a manager other than the first: print `<address> <manager join token>` when it is a
# manager of a swarm that has a leader, nothing otherwise; its output is secret. See
# swarm.scripts.manager_probe_script.
set -eu
if [ "$(docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}')" != "active true" ]; then
  exit 0
fi
# A manager cut off from the others has no leader: its token would be refused.
if ! docker node ls -q >/dev/null 2>&1; then
  exit 0
fi
printf '%s %s\n' "$(docker info --format '{{.Swarm.NodeAddr}}')" "$(docker swarm join-token -q manager)"
