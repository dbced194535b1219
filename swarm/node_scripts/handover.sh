#!/bin/sh
# Run at the reserved IP before the first manager's droplet goes (its handover command's delete),
# on that manager or on its successor (see below). On the manager itself: one of
# several managers demotes itself, so that leadership moves while it is still up. The only
# manager keeps its swarm state in BACKUP on its volume (Docker stopped: Docker's documented
# backup), then, when a worker is Ready, promotes it to stand in, lists it in ROSTER and marks
# it in STANDIN for its successor's init.sh, and demotes itself: the workers follow the stand-in
# and keep their tasks. See swarm.scripts.handover_script.
# BACKUP: where a lone manager keeps its swarm state; ROSTER: the managers left
# (`<address> <manager join token>` lines, for the successor's init.sh); STANDIN: the node IDs of
# workers promoted to stand in. All on the volume, all empty without one.
# GRACE: seconds the workers get to learn the stand-in before this manager stops being one.
# NODE: the swarm node ID of the manager this handover was made for (its init's output).
# inputs: NODE BACKUP ROSTER STANDIN DEMOTE_WAIT GRACE
# uses: _docker _manager _wait
set -eu
reachable() {
  [ "$(docker node inspect --format '{{.ManagerStatus.Reachability}}' "$1" 2>/dev/null)" = reachable ]
}
is_worker() {
  [ "$(docker node inspect --format '{{.Spec.Role}}' "$1" 2>/dev/null)" = worker ]
}
role_of() {
  docker node inspect --format '{{.Spec.Role}}' "$1" 2>/dev/null || true
}
# A delete runs with the inputs of the run that created it, at the reserved IP, wherever it leads
# now: the node it was made for (delete-before-replace, with a volume: deleted before the reserved
# IP moves), or its successor (replaced create-before-delete, or a droplet lost outside Pulumi:
# the reserved IP answers, the lost droplet's own address never would). Demoting "itself" on any
# node but NODE would demote the successor: prove which one this is.
self=$(docker info --format '{{.Swarm.NodeID}}' 2>/dev/null || true)
if [ "$self" != "$NODE" ]; then
  # The successor, a manager of the same swarm: the old node, still a reachable manager, is
  # demoted from here (the request goes to the leader as it would from the node itself), so that
  # leadership moves while it is up. One that is unreachable (its droplet gone) is left to the
  # successor's init and its retirement, which demote and remove it.
  if [ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = true ] &&
    [ "$(role_of "$NODE")" = manager ]; then
    if reachable "$NODE"; then
      docker node demote "$NODE" >/dev/null || true
      if ! wait_until "$DEMOTE_WAIT" is_worker "$NODE"; then
        echo "$NODE is still a manager ${DEMOTE_WAIT}s after its demotion from $(hostname); see docker node ls" >&2
        exit 1
      fi
      echo "$(hostname) demoted $NODE, the node this handover was made for"
      exit 0
    fi
    echo "$NODE is an unreachable manager (its droplet lost?): its retirement removes it"
    exit 0
  fi
  echo "$(hostname) is not the node this handover was made for ($NODE; this one is ${self:-in no swarm}): nothing to hand over"
  exit 0
fi
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
  # The old node's retirement (its settings command's delete, on the successor) may run at the
  # same time and demote it first: then this demotion fails, and the wait below still decides.
  docker node demote "$self" >/dev/null || true
  if ! wait_until "$DEMOTE_WAIT" control_is false; then
    echo "$(hostname) is still a manager ${DEMOTE_WAIT}s after its demotion; see docker node ls" >&2
    exit 1
  fi
  echo "$(hostname) handed over to the other $((managers - 1)) managers (demoted)"
  exit 0
fi
if [ -z "$BACKUP" ]; then
  echo "$(hostname) is the only manager and has no volume: its swarm state goes with it"
  exit 0
fi
umask 077
mkdir -p "$(dirname "$BACKUP")"
docker_down
trap docker_up EXIT
tar -C /var/lib/docker -czf "$BACKUP.tmp" swarm
mv "$BACKUP.tmp" "$BACKUP"
sync
docker_up
trap - EXIT
echo "kept the swarm state of $(hostname) in $BACKUP ($(wc -c <"$BACKUP") bytes)"
wait_until "$DEMOTE_WAIT" control_is true || {
  echo "$(hostname) is not a manager again ${DEMOTE_WAIT}s after its restart: its successor restores the kept state" >&2
  exit 0
}

# A stand-in: without one, the successor restores the kept state under a new address, which the
# workers do not know: they leave and rejoin it, and their tasks stop meanwhile. A worker promoted
# now learns the swarm as a manager; once this node is demoted it is the one the workers follow,
# and the successor joins it as the other managers' successors do.
# Right after this manager's restart the workers are not Ready again until they report in.
ready_worker() {
  promoted=$(docker node ls --filter role=worker --format '{{.ID}} {{.Status}} {{.Availability}}' 2>/dev/null |
    awk '$2 == "Ready" && $3 == "Active" { print $1; exit }')
  [ -n "$promoted" ]
}
if [ -z "$(docker node ls -q --filter role=worker)" ] || ! wait_until "$DEMOTE_WAIT" ready_worker; then
  echo "$(hostname) is the only manager and no worker is Ready to stand in: its successor restores the kept state"
  exit 0
fi
docker node promote "$promoted" >/dev/null
if ! wait_until "$DEMOTE_WAIT" reachable "$promoted"; then
  docker node demote "$promoted" >/dev/null 2>&1 || true
  echo "warning: $promoted did not become a reachable manager within ${DEMOTE_WAIT}s (demoted again): the successor of $(hostname) restores the kept state; the workers will rejoin it" >&2
  exit 0
fi
# The workers learn the stand-in from this manager's dispatcher, which publishes every change of
# managers to their sessions; a worker that has not learnt it when this one stops being a manager
# knows no manager left and would rejoin (its tasks stopped).
sleep "$GRACE"
address=$(docker node inspect --format '{{.ManagerStatus.Addr}}' "$promoted")
token=$(docker swarm join-token -q manager)
printf '%s %s\n' "${address%:*}" "$token" >"$ROSTER.tmp"
printf '%s\n' "$promoted" >"$STANDIN.tmp"
mv "$ROSTER.tmp" "$ROSTER"
mv "$STANDIN.tmp" "$STANDIN"
docker node demote "$self" >/dev/null
if ! wait_until "$DEMOTE_WAIT" control_is false; then
  # Two managers, one about to be destroyed, would leave the swarm without quorum: undo, and
  # fail, so that the droplet stays.
  docker node demote "$promoted" >/dev/null 2>&1 || true
  rm -f "$ROSTER" "$STANDIN"
  echo "$(hostname) is still a manager ${DEMOTE_WAIT}s after its demotion; the stand-in $promoted was demoted again; see docker node ls" >&2
  exit 1
fi
echo "$(hostname) handed over to the stand-in $promoted (a worker, promoted until its successor joins)"
