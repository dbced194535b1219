#!/bin/sh
# Give a node drained for its Docker restart its availability back, once it runs the daemon
# settings labelled LABEL, and its role (ROLE, from the configuration: a run killed between a
# leader's demotion and its promotion left a worker); run on a manager. See
# swarm.day2_scripts.daemon_return_script.
# inputs: NODE POOL LOCK_DIR LABEL_KEY LABEL TIMEOUT ROLE
set -eu
# reachable_manager: true once the node is back in the managers' raft, reachable.
reachable_manager() {
  [ "$(docker node inspect --format '{{if .ManagerStatus}}{{.ManagerStatus.Reachability}}{{end}}' "$NODE" 2>/dev/null || true)" = reachable ]
}
# give_role_back: a manager of the configuration that is a worker now (demoted before its restart,
# by this run or by one killed before it promoted it again) is promoted, and waited for until it
# is a reachable manager: the next manager's restart must find the quorum whole.
give_role_back() {
  if [ "$ROLE" != manager ] || [ "$(docker node inspect --format '{{.Spec.Role}}' "$NODE")" = manager ]; then
    return 0
  fi
  docker node promote "$NODE" >/dev/null
  until reachable_manager; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "node $NODE was promoted again but is not a reachable manager after ${TIMEOUT}s; see docker node ls and run pulumi up again" >&2
      exit 1
    fi
    sleep 1
  done
  echo "node $NODE is a manager again"
}
deadline=$(( $(date +%s) + TIMEOUT ))
# The pool's slot retire.sh (MODE restart) kept for this node, if it drained it.
slot=""
for candidate in "$LOCK_DIR/$POOL".lock.*; do
  [ -d "$candidate" ] || continue
  case "$(cat "$candidate/owner" 2>/dev/null || true)" in "$NODE "*) slot=$candidate ;; esac
done
if [ -z "$slot" ]; then
  # No slot of its own, yet drained or paused: an interrupted run left it so (its slot went stale
  # and another drain took it over). The availability comes from the configuration: active.
  state=$(docker node inspect --format '{{.Status.State}} {{.Spec.Availability}}' "$NODE" 2>/dev/null || true)
  if [ "${state%% *}" = ready ]; then
    give_role_back
    if [ "${state#* }" != active ]; then
      docker node update --availability active "$NODE" >/dev/null
      echo "node $NODE was left ${state#* } by an interrupted run: availability back to active"
      exit 0
    fi
  fi
  echo "node $NODE was not drained for a restart: nothing to give back"
  exit 0
fi
availability=$(cat "$slot/availability" 2>/dev/null || echo active)
# While a manager's own Docker restarts these commands fail: keep asking.
until [ "$(docker node inspect --format '{{.Status.State}}' "$NODE" 2>/dev/null || true)" = ready ] &&
  [ "$(docker node inspect --format "{{index .Description.Engine.Labels \"$LABEL_KEY\"}}" "$NODE" 2>/dev/null || true)" = "$LABEL" ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "node $NODE did not come back with the new daemon settings within ${TIMEOUT}s: it stays drained; see its daemon command's output and run pulumi up again" >&2
    exit 1
  fi
  sleep 1
done
give_role_back
docker node update --availability "$availability" "$NODE" >/dev/null
holder=$(cut -d' ' -f2 "$slot/owner" 2>/dev/null || true)
rm -rf "$slot"
if [ -n "$holder" ]; then kill "$holder" 2>/dev/null || true; fi
echo "node $NODE is back with the new daemon settings (availability $availability)"
