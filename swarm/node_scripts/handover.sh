#!/bin/sh
# Run on the first manager before its droplet goes (its handover command's delete): one of
# several managers demotes itself, so that leadership moves while it is still up; the only
# manager keeps its swarm state in BACKUP on its volume, Docker stopped. See
# swarm.scripts.handover_script.
# BACKUP: where a lone manager keeps its swarm state; ROSTER: where one of several lists the
# others (`<address> <manager join token>` lines, for its successor's init.sh). Both on the
# volume, both empty without one.
# inputs: BACKUP ROSTER DEMOTE_WAIT
set -eu
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ] ||
  [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" != true ]; then
  echo "$(hostname) is not a swarm manager: nothing to hand over"
  exit 0
fi
managers=$(docker info --format '{{.Swarm.Managers}}')
if [ "$managers" -gt 1 ]; then
  # When every manager is replaced in one up, the probes find only new, empty droplets: the
  # successor joins the old managers (they live until the end of the run) from this list.
  if [ -n "$ROSTER" ]; then
    self=$(docker info --format '{{.Swarm.NodeID}}')
    token=$(docker swarm join-token -q manager)
    (
      umask 077
      mkdir -p "$(dirname "$ROSTER")"
      for id in $(docker node ls -q --filter role=manager); do
        [ "$id" != "$self" ] || continue
        address=$(docker node inspect --format '{{.ManagerStatus.Addr}}' "$id")
        printf '%s %s\n' "${address%:*}" "$token"
      done >"$ROSTER.tmp"
      mv "$ROSTER.tmp" "$ROSTER"
    )
  fi
  docker node demote "$(docker info --format '{{.Swarm.NodeID}}')" >/dev/null
  deadline=$(( $(date +%s) + DEMOTE_WAIT ))
  until [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = false ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$(hostname) is still a manager ${DEMOTE_WAIT}s after its demotion; see docker node ls" >&2
      exit 1
    fi
    sleep 1
  done
  echo "$(hostname) handed over to the other $((managers - 1)) managers (demoted)"
  exit 0
fi
if [ -z "$BACKUP" ]; then
  echo "$(hostname) is the only manager and has no volume: its swarm state goes with it"
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
