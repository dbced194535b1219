#!/bin/sh
# Wait until first-boot provisioning is over and Docker answers; prints Docker's version.
# See swarm.scripts.wait_ready_script.
# inputs: TIMEOUT
set -eu
if command -v cloud-init >/dev/null 2>&1; then
  status=0
  cloud-init status --wait >/dev/null || status=$?
  if [ "$status" -eq 1 ]; then
    cloud-init status --long >&2
    echo "cloud-init failed on $(hostname); see /var/log/cloud-init-output.log" >&2
    exit 1
  fi
fi
deadline=$(( $(date +%s) + TIMEOUT ))
until docker info >/dev/null 2>&1; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "Docker did not answer on $(hostname) within ${TIMEOUT}s" >&2
    exit 1
  fi
  sleep 2
done
docker version --format '{{.Server.Version}}'
