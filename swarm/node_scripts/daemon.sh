#!/bin/sh
# Docker daemon settings on this node; run on the node, after the manager drained it when its
# Docker runs other settings (daemon-drain). See swarm.node_access.daemon_script.
# inputs: NODE SETTINGS KEYS FIRST_BOOT_KEYS LABEL_KEY LABEL CONFIG KEYS_FILE
# uses: _wait
set -eu
# The keys of daemon.json the program owns: those it wrote last time, else what cloud-init wrote.
managed=$(cat "$KEYS_FILE" 2>/dev/null || printf '%s' "$FIRST_BOOT_KEYS")
next=$(mktemp "$CONFIG.swarm.XXXXXX")
trap 'rm -f "$next"' EXIT
# The file as it is, without the keys the program owned, with the program's settings over it:
# keys the program does not own (a GPU node's runtime and generic resources) stay as they are.
# Compared as JSON, so the layout cloud-init gave the file is no difference.
# shellcheck disable=SC2086 # $managed: key names, one word each
changed=$(python3 - "$CONFIG" "$next" "$SETTINGS" $managed <<'PY'
import json
import sys

path, out, settings, managed = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), set(sys.argv[4:])
try:
    with open(path, encoding="utf-8") as file:
        current = json.load(file)
except FileNotFoundError:
    current = {}
wanted = {key: value for key, value in current.items() if key not in managed}
wanted.update(settings)
with open(out, "w", encoding="utf-8") as file:
    json.dump(wanted, file, indent=2, sort_keys=True)
    file.write("\n")
print("yes" if wanted != current else "no")
PY
)
# The settings the running daemon loaded, by the label that names them (none: cloud-init's).
running=$(docker info --format '{{range .Labels}}{{println .}}{{end}}' | sed -n "s/^$LABEL_KEY=//p")
if [ "$changed" = no ] && [ "$running" = "$LABEL" ]; then
  echo "daemon settings of $(hostname) (node $NODE) are current"
  exit 0
fi
if [ "$running" = "$LABEL" ]; then
  # Not drained (the manager's command drains only a node whose Docker runs other settings).
  echo "warning: $CONFIG on $(hostname) was changed by hand; restoring the program's settings" >&2
fi
# A leader among other managers was demoted by its drain: its own Docker must have turned worker
# before it restarts. Restarted with its manager certificate and raft state, it came back a
# removed raft member that answered nobody (seen on the sandbox: Down, Unreachable, for good).
# Done when this Docker no longer answers as a manager, or the swarm still wants it a manager.
role_settled() {
  [ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" != true ] ||
    [ "$(docker node inspect --format '{{.Spec.Role}}' self 2>/dev/null)" = manager ]
}
if ! wait_until 120 role_settled; then
  echo "warning: $(hostname) still answers as a manager 120s after its demotion; restarting Docker anyway" >&2
fi
chmod 0644 "$next"
mv "$next" "$CONFIG"
printf '%s\n' "$KEYS" >"$KEYS_FILE"
systemctl restart docker
docker_answers() {
  docker info >/dev/null 2>&1
}
if ! wait_until 300 docker_answers; then
  echo "Docker did not answer on $(hostname) after the restart; see journalctl -u docker" >&2
  exit 1
fi
echo "daemon settings of $(hostname) (node $NODE) applied; Docker restarted"
