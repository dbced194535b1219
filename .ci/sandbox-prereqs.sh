#!/bin/sh
# Prepare a Debian/Ubuntu machine for the test suites: the swarm sandbox (tests/sandbox) and
# the tools some unit tests call (the docker client, cloud-init). The README's one prerequisite
# step, and the first thing .ci/run does. Run as root; idempotent: installs only what is
# missing and changes nothing else on a second run.
#
# No sysctl is needed: sandbox traffic is bridged, never routed (net.ipv4.ip_forward is left
# alone), and the harness adds and removes its own FORWARD rule for bridged traffic.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "sandbox-prereqs: run as root" >&2
    exit 1
fi

installed() { dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# A command that is already present (e.g. dockerd from docker-ce on a CI image) is kept:
# docker.io conflicts with docker-ce.
missing=""
command -v dockerd >/dev/null && command -v docker-init >/dev/null || missing="$missing docker.io"
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
command -v ip >/dev/null || missing="$missing iproute2"
command -v modprobe >/dev/null || missing="$missing kmod"
installed busybox-static || missing="$missing busybox-static"  # the image needs a static one
# The lifecycle engine's volumes: loop devices, formatted and probed as on a droplet.
command -v losetup >/dev/null || [ -x /usr/sbin/losetup ] || [ -x /sbin/losetup ] || missing="$missing mount"
command -v mkfs.ext4 >/dev/null || [ -x /usr/sbin/mkfs.ext4 ] || [ -x /sbin/mkfs.ext4 ] || missing="$missing e2fsprogs"
command -v blkid >/dev/null || [ -x /usr/sbin/blkid ] || [ -x /sbin/blkid ] || missing="$missing util-linux"
# cloud-init for the user-data schema checks (unit suite), curl for the sandbox's Engine API
# calls, iptables for its bridge rule, openssl for the backup jobs, the volume mount script's
# tools (run on loop devices by tests/sandbox/test_volume_mount.py).
for pair in cloud-init:cloud-init curl:curl iptables:iptables openssl:openssl \
    mkswap:util-linux findmnt:util-linux mountpoint:util-linux; do
    command -v "${pair%%:*}" >/dev/null || [ -x "/usr/sbin/${pair%%:*}" ] || [ -x "/sbin/${pair%%:*}" ] ||
        case " $missing " in *" ${pair#*:} "*) ;; *) missing="$missing ${pair#*:}" ;; esac
done
# PostgreSQL (Debian's) for the backup restore drill (tests/sandbox/test_backups.py).
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$missing postgresql"

if [ -n "$missing" ]; then
    # Keep apt from starting daemons in the root namespace: the sandbox runs its own.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -q
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

# Kernel features the hosts use; built-in on some kernels, so a failed modprobe is no error.
for module in overlay bridge br_netfilter veth vxlan loop; do
    modprobe -q "$module" 2>/dev/null || true
done
if ! grep -qw overlay /proc/filesystems; then
    echo "sandbox-prereqs: the kernel has no overlayfs (needed by dockerd's overlay2)" >&2
    exit 1
fi
echo "sandbox-prereqs: ready"
