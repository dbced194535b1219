#!/bin/sh
# Give a node its declared role and exactly its declared labels; run on a manager. Prints the
# node's labels as JSON. See swarm.scripts.node_settings_script.
# LABELS: one `key=value` a line (no key holds '=' or a newline, no value a newline).
# inputs: NODE ROLE LABELS
set -eu
current_role=$(docker node inspect --format '{{.Spec.Role}}' "$NODE")
if [ "$current_role" != "$ROLE" ]; then
  if [ "$ROLE" = manager ]; then
    docker node promote "$NODE" >/dev/null
  else
    docker node demote "$NODE" >/dev/null
  fi
fi
keys=$(docker node inspect --format '{{range $k, $v := .Spec.Labels}}{{println $k}}{{end}}' "$NODE")
# The positional parameters collect one quoted `--label-rm KEY` per undeclared key, then one
# `--label-add KEY=VALUE` per declared label.
set --
while IFS= read -r key; do
  if [ -n "$key" ] && ! printf '%s\n' "$LABELS" | sed 's/=.*//' | grep -qxF -e "$key"; then
    set -- "$@" --label-rm "$key"
  fi
done <<EOF
$keys
EOF
while IFS= read -r label; do
  if [ -n "$label" ]; then
    set -- "$@" --label-add "$label"
  fi
done <<EOF
$LABELS
EOF
docker node update "$@" "$NODE" >/dev/null
docker node inspect --format '{{json .Spec.Labels}}' "$NODE"
