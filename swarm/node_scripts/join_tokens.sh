#!/bin/sh
# Print both join tokens as JSON; its output is secret. An empty token (a manager that lost its
# swarm) fails here, rather than as a baffling join error on every node. See
# swarm.scripts.join_tokens_script.
set -eu
worker=$(docker swarm join-token -q worker)
manager=$(docker swarm join-token -q manager)
if [ -z "$worker" ] || [ -z "$manager" ]; then
  echo "$(hostname): docker swarm join-token returned an empty token; is this node still a swarm manager?" >&2
  exit 1
fi
printf '{"worker":"%s","manager":"%s"}\n' "$worker" "$manager"
