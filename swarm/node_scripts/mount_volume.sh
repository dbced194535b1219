#!/bin/sh
# Mount a node's block-storage volume at MOUNT_PATH, now and at every boot (by UUID in
# /etc/fstab), formatting it only when it is provably blank: its first PROBE_BYTES read back in
# full and `blkid -p` finds no signature. Run on the node. See
# swarm.day2_scripts.mount_volume_script.
# inputs: DEVICE MOUNT_PATH PROBE_BYTES
set -eu
for _ in $(seq 1 60); do
  [ -b "$DEVICE" ] && break
  sleep 2
done
if [ ! -b "$DEVICE" ]; then
  echo "volume $DEVICE did not appear within 120s; is it attached to $(hostname)?" >&2
  exit 1
fi
read_bytes=$(dd if="$DEVICE" bs=65536 count=$(( PROBE_BYTES / 65536 )) iflag=direct 2>/dev/null | wc -c)
if [ "$read_bytes" -ne "$PROBE_BYTES" ]; then
  echo "volume $DEVICE cannot be read (its first $PROBE_BYTES bytes gave $read_bytes): not formatted, not mounted; see dmesg, then run pulumi up again" >&2
  exit 1
fi
# value KEY: one field of the probe's report (TYPE, USAGE, UUID).
value() { printf '%s\n' "$probed" | sed -n "s/^$1=//p"; }
probe=0
probed=$(blkid -p -o export "$DEVICE") || probe=$?
case "$probe" in
  0) ;;
  2)
    echo "volume $DEVICE is readable and carries no signature: formatting it (ext4)"
    mkfs.ext4 -q "$DEVICE"
    probed=$(blkid -p -o export "$DEVICE")
    ;;
  *)
    echo "blkid -p $DEVICE exited $probe (4: usage error, 8: ambivalent probe, several signatures): not formatted, not mounted; inspect it with wipefs -n $DEVICE" >&2
    exit 1
    ;;
esac
fs_type=$(value TYPE)
uuid=$(value UUID)
if [ "$(value USAGE)" != filesystem ] || [ -z "$uuid" ]; then
  echo "volume $DEVICE carries a signature that is not a mountable filesystem ($(printf '%s' "$probed" | tr '\n' ' ')): not formatted, not mounted" >&2
  exit 1
fi
mkdir -p "$MOUNT_PATH"
line="UUID=$uuid $MOUNT_PATH $fs_type defaults,nofail,discard,noatime 0 2"
if ! grep -qxF -e "$line" /etc/fstab; then
  # Another line for this volume (an earlier mount path) goes. Rewritten in place, not renamed.
  kept=$(mktemp)
  grep -v -e "^UUID=$uuid " /etc/fstab >"$kept" || true
  echo "$line" >>"$kept"
  cat "$kept" >/etc/fstab
  rm -f "$kept"
fi
if mountpoint -q "$MOUNT_PATH"; then
  mounted=$(findmnt -n -o UUID --mountpoint "$MOUNT_PATH" || true)
  if [ "$mounted" != "$uuid" ]; then
    echo "$MOUNT_PATH is already a mount point of another filesystem (UUID '$mounted'), not of volume $DEVICE ($uuid)" >&2
    exit 1
  fi
else
  mount "$MOUNT_PATH"
fi
echo "volume $DEVICE ($fs_type, UUID $uuid) mounted at $MOUNT_PATH"
