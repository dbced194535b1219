#!/bin/sh
# Root's authorized keys on this node: the program's own key, then swarm:sshAuthorizedKeys.
# See swarm.node_access.authorized_keys_script.
# inputs: NODE KEYS DIR
set -eu
dir=$DIR
file="$dir/authorized_keys"
mkdir -p "$dir"
chmod 0700 "$dir"
if [ -f "$file" ] && [ "$(cat "$file")" = "$KEYS" ]; then
  echo "authorized_keys of $(hostname) (node $NODE) is current"
  exit 0
fi
# Written beside it and renamed over it: sshd reads either the old list or the new one, never a
# half-written file, and a full disk leaves the old list in place.
next=$(mktemp "$dir/authorized_keys.XXXXXX")
trap 'rm -f "$next"' EXIT
printf '%s\n' "$KEYS" >"$next"
chmod 0600 "$next"
mv "$next" "$file"
echo "authorized_keys of $(hostname) (node $NODE) rewritten: $(grep -c . "$file") keys"
