#!/bin/sh
# Run on the only manager before its droplet goes: copy its swarm state to the block-storage
# volume, Docker stopped. See swarm.scripts.backup_swarm_state_script.
# inputs: BACKUP
set -eu
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ] ||
  [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" != true ]; then
  echo "$(hostname) is not a swarm manager: no swarm state to keep"
  exit 0
fi
managers=$(docker info --format '{{.Swarm.Managers}}')
if [ "$managers" -gt 1 ]; then
  echo "$(hostname) is one of $managers managers: they keep the swarm state"
  exit 0
fi
umask 077
mkdir -p "$(dirname "$BACKUP")"
systemctl stop docker
trap 'systemctl start docker' EXIT
tar -C /var/lib/docker -czf "$BACKUP.tmp" swarm
mv "$BACKUP.tmp" "$BACKUP"
sync
echo "kept the swarm state of $(hostname) in $BACKUP ($(wc -c <"$BACKUP") bytes)"
