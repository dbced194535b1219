#!/bin/sh
# The create of the first manager's handover command: with a volume, check that the folder where
# a lone manager's state will be kept when its droplet is replaced is on the mounted volume.
# See swarm.scripts.keep_swarm_state_script.
# STATE_DIR, MOUNT_PATH: both empty without a volume.
# inputs: STATE_DIR MOUNT_PATH
set -eu
if [ -z "$MOUNT_PATH" ]; then
  echo "$(hostname) hands over to the other managers (demoted) before its droplet goes"
  exit 0
fi
if ! mountpoint -q "$MOUNT_PATH"; then
  echo "$(hostname): $MOUNT_PATH is not mounted: the swarm state could not be kept across a replacement" >&2
  exit 1
fi
mkdir -p "$STATE_DIR"
chmod 0700 "$STATE_DIR"
echo "swarm state kept in $STATE_DIR when this droplet is replaced"
