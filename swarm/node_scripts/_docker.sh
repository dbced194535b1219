#!/bin/sh
# Fragment (see template.py): for the scripts that copy Docker's own files (the swarm state), which
# must not change during the copy.
set -eu

# docker_down: stop Docker and its socket. On a droplet docker.socket stays active when only
# docker.service stops, and the first client to connect (a cron job, an agent) starts Docker again
# in the middle of the copy (socket activation).
docker_down() {
  systemctl stop docker.socket docker.service
}

# docker_up: start both again, as they were.
docker_up() {
  systemctl start docker.socket docker.service
}
