#!/bin/sh
# Give a node drained for its Docker restart its availability back, once it runs the daemon
# settings labelled LABEL; run on a manager. See swarm.day2_scripts.daemon_return_script.
# inputs: NODE POOL LOCK_DIR LABEL_KEY LABEL TIMEOUT
set -eu
# The pool's slot retire.sh (MODE restart) kept for this node, if it drained it.
slot=""
for candidate in "$LOCK_DIR/$POOL".lock.*; do
  [ -d "$candidate" ] || continue
  case "$(cat "$candidate/owner" 2>/dev/null || true)" in "$NODE "*) slot=$candidate ;; esac
done
if [ -z "$slot" ]; then
  echo "node $NODE was not drained for a restart: nothing to give back"
  exit 0
fi
availability=$(cat "$slot/availability" 2>/dev/null || echo active)
# While a manager's own Docker restarts these commands fail: keep asking.
deadline=$(( $(date +%s) + TIMEOUT ))
until [ "$(docker node inspect --format '{{.Status.State}}' "$NODE" 2>/dev/null || true)" = ready ] &&
  [ "$(docker node inspect --format "{{index .Description.Engine.Labels \"$LABEL_KEY\"}}" "$NODE" 2>/dev/null || true)" = "$LABEL" ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "node $NODE did not come back with the new daemon settings within ${TIMEOUT}s: it stays drained; see its daemon command's output and run pulumi up again" >&2
    exit 1
  fi
  sleep 1
done
docker node update --availability "$availability" "$NODE" >/dev/null
holder=$(cut -d' ' -f2 "$slot/owner" 2>/dev/null || true)
rm -rf "$slot"
if [ -n "$holder" ]; then kill "$holder" 2>/dev/null || true; fi
echo "node $NODE is back with the new daemon settings (availability $availability)"
