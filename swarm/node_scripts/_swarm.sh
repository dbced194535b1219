#!/bin/sh
# Fragment (see __init__.py): for the scripts that bring a node into a swarm (init, join).
set -eu

# local_state: this node's swarm state (inactive, pending, active, error, locked); a daemon that
# does not answer fails the script.
local_state() {
  docker info --format '{{.Swarm.LocalNodeState}}'
}

# swarm_join ADDR PORT TOKEN MANAGER: join the swarm of MANAGER (address:port) with TOKEN,
# advertising and listening on this node's VPC address ADDR, at PORT.
swarm_join() {
  docker swarm join --advertise-addr "$1" --listen-addr "$1:$2" --token "$3" "$4" >/dev/null
}
