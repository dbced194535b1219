#!/bin/sh
# Wait until every service runs all its tasks, steadily for STABLE seconds; after TIMEOUT, fail
# naming each service that does not, with its tasks' own errors. Run on a manager. See
# swarm.scripts.converge_script.
# TARGETS: one service a line: its name, the running tasks it needs and, if global, its nodes.
# inputs: DIGEST TARGETS TIMEOUT STABLE
# uses: _task_errors
set -eu
# DIGEST identifies the services' specs; it is only here so that the script, and with it the
# command, changes whenever a service does.
: "$DIGEST"
started=$(date +%s)
deadline=$(( started + TIMEOUT ))

# why NAME TASKS [NODE...]: prints why service NAME has not converged, nothing once it has;
# fails when waiting cannot help.
why() {
  name=$1 tasks=$2
  shift 2
  update=$(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "$name")
  case "$update" in
    updating | rollback_started)
      echo "update in progress"
      return 0
      ;;
    paused | rollback_paused | rollback_completed)
      echo "update $update: $(docker service inspect --format '{{.UpdateStatus.Message}}' "$name")"
      return 1
      ;;
  esac
  nodes=$(docker service ps "$name" --filter desired-state=running --format '{{.CurrentState}}|{{.Node}}' |
    sed -n 's/^Running[^|]*|//p')
  if [ "$#" -gt 0 ]; then
    missing=""
    for node in "$@"; do
      printf '%s\n' "$nodes" | grep -qxF "$node" || missing="$missing $node"
    done
    if [ -n "$missing" ]; then echo "no running task on$missing"; fi
  else
    running=$(printf '%s' "$nodes" | grep -c . || true)
    if [ "$running" -ne "$tasks" ]; then echo "$running of $tasks tasks running"; fi
  fi
}

stable_since=""
while :; do
  report="" hopeless=""
  while read -r name tasks nodes; do
    # shellcheck disable=SC2086 # $nodes: node names, which contain no blanks
    reason=$(why "$name" "$tasks" $nodes </dev/null) || hopeless=1
    if [ -n "$reason" ]; then
      report="$report$name: $reason
"
    fi
  done <<EOF
$TARGETS
EOF
  now=$(date +%s)
  if [ -z "$report" ]; then
    stable_since=${stable_since:-$now}
    if [ $(( now - stable_since )) -ge "$STABLE" ]; then
      break
    fi
  elif [ -n "$hopeless" ] || [ "$now" -ge "$deadline" ]; then
    echo "not every service converged after $(( now - started ))s (swarm:convergeTimeout: ${TIMEOUT}s):" >&2
    printf '%s' "$report" | while IFS= read -r line; do
      echo "  $line"
      task_errors "${line%%:*}"
    done >&2
    exit 1
  else
    stable_since=""
  fi
  sleep 2
done
printf '%s\n' "$TARGETS" | while read -r name tasks nodes; do
  echo "$name: $tasks of $tasks tasks running"
done
