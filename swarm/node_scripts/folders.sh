#!/bin/sh
# Make every bind-mount source exist, with its declared owner and mode. Prints owner, mode and
# path of each. See swarm.scripts.prepare_folders_script.
# FOLDERS: one folder a line: OWNER MODE PATH, '-' for an owner or mode not declared (neither
# holds a blank; the path, last, may).
# inputs: FOLDERS
set -eu
while IFS= read -r folder; do
  [ -n "$folder" ] || continue
  owner=${folder%% *}
  folder=${folder#* }
  mode=${folder%% *}
  path=${folder#* }
  [ -e "$path" ] || mkdir -p "$path"
  if [ "$owner" != - ]; then chown "$owner" "$path"; fi
  if [ "$mode" != - ]; then chmod "$mode" "$path"; fi
  stat -c '%U:%G %a %n' "$path"
done <<EOF
$FOLDERS
EOF
