#!/bin/sh
# Bring the first manager into the swarm, advertising its VPC address ADDR; prints its node ID.
# See swarm.scripts.init_script: join the swarm the other managers hold, else restore the state
# a predecessor kept on the volume, else initialise a new swarm.
# stdin: one line `<address> <manager join token>` per other manager in a swarm (manager_probe.sh).
# STATE_DIR: the folder on the volume where a predecessor kept its swarm state (STATE_BACKUP)
# or, one of several managers, the others it left (ROSTER: lines as on stdin). All three are
# empty without a volume. STANDINS: workers a lone predecessor promoted to stand in for it
# (node IDs, handover.sh), demoted once this one has joined them, STANDIN_GRACE seconds later.
# inputs: ADDR PORT ADDRESS_POOL STATE_DIR STATE_BACKUP ROSTER STANDINS STANDIN_GRACE
# uses: _docker _swarm _manager _wait
set -eu
state=$(local_state)
if [ "$state" = inactive ]; then
  found=""
  # The probes' answers first, then the managers the predecessor listed on the volume.
  while read -r peer token; do
    [ -n "$token" ] || continue
    found="$found $peer"
    if swarm_join "$ADDR" "$PORT" "$token" "$peer:$PORT"; then
      echo "$(hostname): joined the swarm the manager at $peer holds" >&2
      state=$(local_state)
      # The state a lone predecessor kept before handing over is older than the swarm joined:
      # set aside, never restored over it later.
      if [ -n "$STATE_BACKUP" ] && [ -f "$STATE_BACKUP" ]; then
        mv "$STATE_BACKUP" "$STATE_BACKUP.superseded-$(date -u +%Y%m%dT%H%M%SZ)"
      fi
      break
    fi
    # A join that failed half-way leaves the node pending: clear it before the next manager.
    if [ "$(local_state)" != inactive ]; then docker swarm leave --force >/dev/null 2>&1 || true; fi
  done <<PEERS
$(cat; if [ -n "$ROSTER" ] && [ -f "$ROSTER" ]; then cat "$ROSTER"; fi)
PEERS
  if [ "$state" = inactive ] && [ -n "$found" ]; then
    echo "$(hostname): the managers at$found hold a swarm that refused this node; not initialising another (see docker info there)" >&2
    exit 1
  fi
fi
# Messages go to stderr: the script's stdout is the node ID.
if [ "$state" = inactive ] && [ -n "$STATE_BACKUP" ] && [ -f "$STATE_BACKUP" ]; then
  echo "$(hostname): restoring the swarm state kept in $STATE_BACKUP" >&2
  docker_down
  rm -rf /var/lib/docker/swarm
  tar -C /var/lib/docker -xzf "$STATE_BACKUP"
  # The kept state names the old droplet's address: this one's instead, else it cannot listen.
  old=$(sed -n 's/.*"LocalAddr":"\([^"]*\)".*/\1/p' /var/lib/docker/swarm/docker-state.json)
  if [ -n "$old" ]; then
    sed -i "s/$(printf '%s' "$old" | sed 's/[.]/[.]/g')/$ADDR/g" /var/lib/docker/swarm/docker-state.json
  fi
  docker_up
  docker swarm init --force-new-cluster --advertise-addr "$ADDR" --listen-addr "$ADDR:$PORT" >/dev/null
  # Tasks the daemon tried to start while the cluster was being re-formed keep failing ("cannot
  # create a swarm scoped network when swarm is not active"): a restart starts them cleanly.
  systemctl restart docker
  if ! wait_until 60 control_is true; then
    echo "$(hostname): the restored manager did not come back within 60s; see docker info" >&2
    exit 1
  fi
  mv "$STATE_BACKUP" "$STATE_BACKUP.restored-$(date -u +%Y%m%dT%H%M%SZ)"
  state=$(local_state)
fi
if [ "$state" = inactive ] && [ -n "$STATE_DIR" ] && [ -d "$STATE_DIR" ]; then
  echo "$(hostname): $STATE_DIR on this volume belonged to a manager of a swarm, but no manager holds it any more and no kept state is there: not initialising a new, empty swarm over it. Restore the swarm state (docs/day-2-operations.md), or remove $STATE_DIR to start afresh" >&2
  exit 1
fi
case "$state" in
  inactive)
    docker swarm init --advertise-addr "$ADDR" --listen-addr "$ADDR:$PORT" \
      --default-addr-pool "$ADDRESS_POOL" --default-addr-pool-mask-length 24 >/dev/null
    ;;
  active)
    if [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" != true ]; then
      echo "$(hostname) is in a swarm but not as a manager; it cannot init this one" >&2
      exit 1
    fi
    ;;
  *)
    echo "$(hostname): swarm state '$state' is not a working manager (pending or error: a join or init that did not complete; locked: run docker swarm unlock); see docker info" >&2
    exit 1
    ;;
esac
# The node this droplet replaced, left under the same hostname: its retirement ran while it still
# held the reserved IP (delete-before-replace deletes it first), on itself, and a manager does not
# remove itself. Removed here, once this one is a manager: when it is Down, or no manager any more
# (its handover demoted it; the swarm may not have noticed yet that its droplet is gone). A
# predecessor still a manager is alive (replaced create-before-delete) and retires later.
self=$(docker info --format '{{.Swarm.NodeID}}')
docker node ls --format '{{.ID}} {{.Hostname}} {{.Status}} {{.ManagerStatus}}' | while read -r id name status manager; do
  if [ "$name" = "$(hostname)" ] && [ "$id" != "$self" ] && { [ "$status" = Down ] || [ -z "$manager" ]; }; then
    if [ "$(docker node inspect --format '{{.Spec.Role}}' "$id")" = manager ]; then
      docker node demote "$id" >/dev/null
    fi
    docker node rm --force "$id" >/dev/null
    echo "$(hostname): removed the node $id its predecessor left behind" >&2
  fi
done
# Workers that stood in for a lone predecessor go back to being workers, now that this one is a
# manager: the swarm keeps one manager, as declared. Not at once: each worker learns this manager
# from the one it is connected to (the stand-in), in a session message at the next heartbeat
# (5 s); demoted before that, the stand-in would leave workers knowing no manager, and their
# join commands would take them out of the swarm to join again, stopping their tasks.
if [ -n "$STANDINS" ] && [ -s "$STANDINS" ]; then
  sleep "$STANDIN_GRACE"
  while read -r standin; do
    [ -n "$standin" ] || continue
    if [ "$(docker node inspect --format '{{.Spec.Role}}' "$standin" 2>/dev/null)" = manager ]; then
      docker node demote "$standin" >/dev/null
      echo "$(hostname): demoted $standin, which stood in for its predecessor" >&2
    fi
  done <"$STANDINS"
  rm -f "$STANDINS"
fi
if [ -n "$ROSTER" ] && [ -f "$ROSTER" ]; then rm -f "$ROSTER"; fi
echo "$self"
