#!/bin/sh
# Take a node out of its pool's service; run on a manager. MODE retire: drain it, wait until its
# tasks run elsewhere, remove it (swarm.day2_scripts.retire_script). MODE restart: unless its
# Docker already runs the daemon settings labelled LABEL, the same drain and wait, then keep the
# pool's slot for daemon-return.sh (swarm.day2_scripts.daemon_drain_script); a leader among
# other managers is demoted first, so that leadership moves while it is up.
# inputs: NODE POOL MAX_UNAVAILABLE TIMEOUT UNPLACEABLE LOCK_WAIT LOCK_DIR MODE LABEL_KEY LABEL
# uses: _task_errors
set -eu
if ! docker node inspect "$NODE" >/dev/null 2>&1; then
  echo "node $NODE is not in the swarm: nothing to $MODE"
  exit 0
fi
# The label of the daemon settings the node's running Docker loaded ("" for none).
engine_label() {
  docker node inspect --format "{{index .Description.Engine.Labels \"$LABEL_KEY\"}}" "$NODE" 2>/dev/null || echo "?"
}
if [ "$MODE" = restart ] && [ "$(engine_label)" = "$LABEL" ]; then
  echo "node $NODE runs the current daemon settings: nothing to restart"
  exit 0
fi
if [ "$MODE" = retire ] && [ "$NODE" = "$(docker info --format '{{.Swarm.NodeID}}')" ]; then
  # The manager this runs on (at the reserved IP): removing itself would leave nobody to ask.
  echo "node $NODE is the manager this runs on: it stays in the swarm" >&2
  exit 0
fi

# MAX_UNAVAILABLE slots per pool, each an atomic `mkdir` with its holder written inside.
mkdir -p "$LOCK_DIR"
lock_deadline=$(( $(date +%s) + LOCK_WAIT ))
lock=""
while [ -z "$lock" ]; do
  holders=""
  slot=1
  while [ "$slot" -le "$MAX_UNAVAILABLE" ]; do
    candidate="$LOCK_DIR/$POOL.lock.$slot"
    slot=$((slot + 1))
    if mkdir "$candidate" 2>/dev/null; then
      lock=$candidate
      break
    fi
    owner=$(cat "$candidate/owner" 2>/dev/null || true)
    since=${owner##* }
    case "$since" in '' | *[!0-9]*) since=$(stat -c %Y "$candidate" 2>/dev/null || date +%s) ;; esac
    pid=$(printf '%s' "$owner" | cut -d' ' -f2)
    if { [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; } || [ $(( $(date +%s) - since )) -gt $(( TIMEOUT + 120 )) ]; then
      # Stale: its holder died or overran. Take it over only if nobody did in the meantime.
      if [ "$(cat "$candidate/owner" 2>/dev/null || true)" = "$owner" ]; then
        echo "taking over a stale retirement lock ($owner)" >&2
        rm -rf "$candidate"
      fi
      continue
    fi
    holders="$holders ($owner)"
  done
  [ -z "$lock" ] || break
  if [ "$(date +%s)" -ge "$lock_deadline" ]; then
    echo "$MAX_UNAVAILABLE retirement(s) in pool $POOL still hold its slots in $LOCK_DIR:$holders; try again" >&2
    exit 1
  fi
  sleep 2
done
echo "$NODE $$ $(date +%s)" >"$lock/owner"
trap 'rm -rf "$lock"' EXIT
trap 'exit 1' HUP INT TERM
# A killed deploy's retirement of this node goes on on the manager after its SSH session is gone
# (nothing tells a script without a terminal), and held the slot this one waited for: it may
# have removed the node meanwhile. Then there is nothing left to do (not a failure).
if ! docker node inspect "$NODE" >/dev/null 2>&1; then
  echo "node $NODE left the swarm while this waited for a slot (an interrupted $MODE finished it): nothing to $MODE"
  exit 0
fi
if [ "$MODE" = restart ] && [ "$(engine_label)" = "$LABEL" ]; then
  echo "node $NODE restarted with the current daemon settings meanwhile: nothing to drain"
  exit 0
fi

hostname=$(docker node inspect --format '{{.Description.Hostname}}' "$NODE")
# The availability to give back: the configured one, active (no pool sets another). Not the
# node's current one, which a drain or pause cut off half-way (a killed deploy) left behind.
availability=active
# Every replicated service with a task on the node, in its task history too: a retried
# retirement, after a drain, still knows what to wait for. One line each: ID, replicas, name.
services=""
tasks=$(docker node ps -q "$NODE")
# shellcheck disable=SC2086 # $tasks: task IDs, one word each
for service in $(if [ -n "$tasks" ]; then docker inspect --type task --format '{{.ServiceID}}' $tasks | sort -u; fi); do
  replicas=$(docker service inspect --format '{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{end}}' "$service" 2>/dev/null) || continue
  if [ -n "$replicas" ]; then
    services="$services$service $replicas $(docker service inspect --format '{{.Spec.Name}}' "$service")
"
  fi
done
# Docker never rebalances: tasks pile up on the nodes that stayed up while others restarted, were
# replaced or left, so a node may hold two tasks of a service, and draining it would stop both at
# once. Move those off first, one at a time: pause the node (it keeps its tasks and takes no new
# ones), then a forced rolling update (the service's own update_config: its order, its delay, its
# healthcheck monitoring) replaces each of the service's tasks on the other nodes.
piled=""
if [ "$(docker node inspect --format '{{.Status.State}}' "$NODE")" != down ]; then
  piled=$(printf '%s' "$services" | while read -r service replicas name; do
    [ -n "$service" ] || continue
    here=$(docker service ps -q --filter desired-state=running --filter "node=$NODE" "$service" 2>/dev/null | grep -c . || true)
    if [ "$replicas" -ge 2 ] && [ "$here" -ge 2 ]; then echo "$service $here $name"; fi
  done)
fi
if [ -n "$piled" ]; then
  docker node update --availability pause "$NODE" >/dev/null
  printf '%s\n' "$piled" | while read -r service here name; do
    echo "$name has $here tasks on $hostname: moving them off one at a time before it is drained" >&2
    # Bounded: a task with nowhere else to go leaves the update waiting; the drain below says why.
    timeout "$TIMEOUT" docker service update --force --detach=false --quiet "$service" >/dev/null </dev/null ||
      echo "warning: the rolling update of $name did not finish; draining $hostname anyway" >&2
  done
fi
docker node update --availability drain "$NODE" >/dev/null

# short ID REPLICAS: prints "RUNNING STUCK": tasks running on other nodes, and whether every
# missing task is pending with an error (no node can take it).
short() {
  # No answer (a manager's Docker restarting for its daemon settings) counts as none running yet.
  ids=$(docker service ps -q --no-trunc --filter desired-state=running "$1" 2>/dev/null) || { echo "0 0"; return; }
  if [ -z "$ids" ]; then echo "0 0"; return; fi
  # shellcheck disable=SC2086 # $ids: task IDs, one word each
  # State first: a pending task has no node ID, an empty last field.
  docker inspect --type task --format '{{.Status.State}} {{if .Status.Err}}err{{else}}-{{end}} {{.NodeID}}' $ids |
    awk -v node="$NODE" -v want="$2" '
      $1 == "running" && $3 != node { running++ }
      $1 == "pending" && $2 == "err" { stuck++ }
      END { print running + 0, (running + stuck >= want && stuck > 0) ? 1 : 0 }'
}

started=$(date +%s)
stuck_since=""
while :; do
  report="" stuck=""
  while read -r service replicas name; do
    [ -n "$service" ] || continue
    read -r running unplaced <<COUNTS
$(short "$service" "$replicas" </dev/null)
COUNTS
    if [ "$running" -lt "$replicas" ]; then
      report="$report$service $name: $running of $replicas tasks running on other nodes
"
      if [ "$unplaced" = 1 ]; then stuck=1; fi
    fi
  done <<EOF
$services
EOF
  now=$(date +%s)
  if [ -z "$report" ]; then
    break
  fi
  if [ -n "$stuck" ]; then stuck_since=${stuck_since:-$now}; else stuck_since=""; fi
  if [ "$MODE" = restart ] && [ -n "$stuck_since" ] && [ $(( now - stuck_since )) -ge "$UNPLACEABLE" ]; then
    # A task no other node can take (a service pinned here) cannot be kept running through a
    # restart of this node's Docker: it stops for as long as the restart takes.
    printf 'tasks that no other node can take stop while %s restarts Docker:\n%s' "$hostname" "$report" >&2
    break
  fi
  if [ $(( now - started )) -ge "$TIMEOUT" ] || { [ -n "$stuck_since" ] && [ $(( now - stuck_since )) -ge "$UNPLACEABLE" ]; }; then
    state=$(docker node inspect --format '{{.Status.State}}' "$NODE")
    # The tasks' errors first, while the node is still drained: once its availability is back
    # the scheduler places the pending task again and its error is gone.
    details=$(printf '%s' "$report" | while read -r service line; do
      echo "  $line"
      task_errors --filter desired-state=running "$service"
    done)
    if [ "$state" = down ] && [ "$MODE" = retire ]; then
      echo "warning: $hostname ($NODE) is down (its droplet is gone?): removing it although its tasks do not all run elsewhere:" >&2
    else
      docker node update --availability "$availability" "$NODE" >/dev/null
      echo "cannot $MODE $hostname ($NODE): its tasks do not all run on other nodes after $(( now - started ))s; it stays in the swarm (availability back to $availability):" >&2
    fi
    printf '%s\n' "$details" >&2
    if [ "$state" != down ] || [ "$MODE" != retire ]; then
      exit 1
    fi
    break
  fi
  sleep 1
done
# not_raft_member: true once the node has left the managers' raft (a demotion is done, and
# leadership moved if it led): the swarm lists no manager status for it any more.
not_raft_member() {
  [ -z "$(docker node inspect --format '{{if .ManagerStatus}}{{.ManagerStatus.Reachability}}{{end}}' "$NODE" 2>/dev/null || echo '?')" ]
}
# leader_elsewhere: true when a manager other than the node leads (asked of any manager: while
# leadership moves, the manager this runs on may not answer for a moment).
leader_elsewhere() {
  docker node ls --format '{{.ID}} {{.ManagerStatus}}' 2>/dev/null | grep -v "^$NODE " | grep -q ' Leader$'
}
# demote_and_wait: demote the node, then wait until it has left the raft and another manager
# leads. Docker has no "transfer leadership": demoting the leader makes it hand leadership over
# while it is still up, so the swarm keeps a leader (a leader whose Docker stops leaves the swarm
# without one until the others elect, seconds later).
demote_and_wait() {
  docker node demote "$NODE" >/dev/null
  deadline=$(( $(date +%s) + TIMEOUT ))
  until not_raft_member && leader_elsewhere; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$hostname ($NODE) was demoted but is still in the managers' raft (or no other manager leads) after ${TIMEOUT}s; see docker node ls" >&2
      return 1
    fi
    sleep 1
  done
}
if [ "$MODE" = restart ]; then
  # A leader among other managers hands leadership over before its Docker restarts: demoted, it
  # leaves the raft (3 managers become 2 of 2, all up: the quorum holds) and another leads; then
  # it is promoted again while its Docker still runs and restarts as a follower (2 of 3 up, the
  # leader elsewhere). Not restarted demoted: a node whose Docker restarted in the middle of its
  # own demotion came back Down for good (seen on the sandbox). Only with two other reachable
  # managers: demoting one of two would leave a raft of one whose loss is the swarm's. A run
  # killed in between leaves a worker: daemon-return.sh promotes it (the role comes from the
  # configuration).
  status=$(docker node inspect --format '{{if .ManagerStatus}}{{.ManagerStatus.Leader}}{{end}}' "$NODE")
  others=$(docker node ls --format '{{.ID}} {{.ManagerStatus}}' | grep -v "^$NODE " | grep -cE ' (Reachable|Leader)$' || true)
  if [ "$status" = true ] && [ "$others" -ge 2 ]; then
    echo "$hostname ($NODE) leads the swarm: demoting it so that leadership moves before its Docker restarts" >&2
    demote_and_wait
    docker node promote "$NODE" >/dev/null
    deadline=$(( $(date +%s) + TIMEOUT ))
    until [ "$(docker node inspect --format '{{if .ManagerStatus}}{{.ManagerStatus.Reachability}}{{end}}' "$NODE" 2>/dev/null || true)" = reachable ]; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "$hostname ($NODE) was promoted again but is not a reachable manager after ${TIMEOUT}s; see docker node ls" >&2
        exit 1
      fi
      sleep 1
    done
    echo "$hostname ($NODE) is a follower now: another manager leads" >&2
  fi
  # Drained. The node's daemon command restarts Docker next, then daemon-return.sh waits until it
  # is back with the new settings, gives it its availability back and frees the slot. Until then
  # a placeholder process holds the slot; should daemon-return never run, the placeholder ends
  # and the slot is stale after TIMEOUT + 120 s (the node stays drained: `up` failed, said why).
  printf '%s\n' "$availability" >"$lock/availability"
  setsid sleep $(( TIMEOUT + 120 )) </dev/null >/dev/null 2>&1 &
  echo "$NODE $! $(date +%s)" >"$lock/owner"
  trap - EXIT
  echo "drained $hostname ($NODE) for its Docker restart after $(( $(date +%s) - started ))s"
  exit 0
fi
if [ "$(docker node inspect --format '{{.Spec.Role}}' "$NODE")" = manager ]; then
  # Out of the raft before it goes (leadership moves first if it led): removed while still a
  # member, it would count against the quorum until the others notice.
  if [ "$(docker node inspect --format '{{.Status.State}}' "$NODE")" = down ]; then
    docker node demote "$NODE" >/dev/null
  else
    demote_and_wait
  fi
fi
docker node rm --force "$NODE" >/dev/null
echo "retired $hostname ($NODE) after $(( $(date +%s) - started ))s"

