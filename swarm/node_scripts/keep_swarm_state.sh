#!/bin/sh
# The create of a lone manager's swarm-state command: check that the folder where its state will
# be kept when its droplet is replaced is on the mounted volume. See
# swarm.scripts.keep_swarm_state_script.
# inputs: STATE_DIR MOUNT_PATH
set -eu
if ! mountpoint -q "$MOUNT_PATH"; then
  echo "$(hostname): $MOUNT_PATH is not mounted: the swarm state could not be kept across a replacement" >&2
  exit 1
fi
mkdir -p "$STATE_DIR"
chmod 0700 "$STATE_DIR"
echo "swarm state kept in $STATE_DIR when this droplet is replaced"
