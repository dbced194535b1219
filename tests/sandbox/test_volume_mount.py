"""The volume mount script (swarm.node_scripts.day2.mount_volume_script) on real block devices: loop
devices on this machine, as root. Each run is in a mount namespace of its own with a temporary
file bind-mounted over /etc/fstab, so neither the machine's mounts nor its fstab change.

What must hold: a blank device is formatted and mounted; a device with data is mounted as it is;
a device that cannot be read, or carries a signature that is not a filesystem, is neither
formatted nor mounted, and the script says why.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.node_scripts import day2

SIZE = "64M"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "fstab").write_text("# the machine's own lines stay\nproc /proc proc defaults 0 0\n")
    return tmp_path


@pytest.fixture
def loop_device(workdir: Path) -> Iterator[str]:
    """A fresh, zeroed 64 MiB loop device, detached afterwards."""
    image = workdir / "volume.img"
    subprocess.run(["truncate", "-s", SIZE, str(image)], check=True)
    device = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True,
                            text=True).stdout.strip()
    yield device
    subprocess.run(["losetup", "-d", device], check=False, capture_output=True)


def in_namespace(workdir: Path, commands: str) -> subprocess.CompletedProcess:
    """Run `commands` (sh) in a private mount namespace whose /etc/fstab is workdir/fstab."""
    setup = f"mount --bind {workdir / 'fstab'} /etc/fstab\n"
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", setup + commands],
                          capture_output=True, text=True, timeout=120)


def mount_script(workdir: Path, device: str, mount_path: Path) -> Path:
    path = workdir / f"mount-{mount_path.name}.sh"
    path.write_text(day2.mount_volume_script(device, str(mount_path)))
    return path


def probe(device: str) -> subprocess.CompletedProcess:
    return subprocess.run(["blkid", "-p", "-o", "export", device], capture_output=True, text=True)


def test_a_blank_device_is_formatted_and_mounted_by_uuid(workdir, loop_device):
    data = workdir / "data"
    script = mount_script(workdir, loop_device, data)
    result = in_namespace(workdir, f"sh {script} && findmnt -n -o SOURCE,FSTYPE {data} && echo kept > {data}/file")
    assert result.returncode == 0, result.stderr
    assert "is readable and carries no signature: formatting it (ext4)" in result.stdout
    assert result.stdout.splitlines()[-1].split() == [loop_device, "ext4"]
    uuid = [line for line in probe(loop_device).stdout.splitlines() if line.startswith("UUID=")][0][5:]
    fstab = (workdir / "fstab").read_text().splitlines()
    assert fstab[-1] == f"UUID={uuid} {data} ext4 defaults,nofail,discard,noatime 0 2"
    assert fstab[:2] == ["# the machine's own lines stay", "proc /proc proc defaults 0 0"]


def test_a_device_with_data_is_mounted_as_it_is_and_runs_again_harmlessly(workdir, loop_device):
    data = workdir / "data"
    script = mount_script(workdir, loop_device, data)
    first = in_namespace(workdir, f"sh {script} && echo precious > {data}/file")
    assert first.returncode == 0, first.stderr
    uuid = probe(loop_device).stdout
    # a replacement droplet (a fresh namespace: nothing mounted) and a re-run on the same one
    again = in_namespace(workdir, f"sh {script} && sh {script} && cat {data}/file")
    assert again.returncode == 0, again.stderr
    assert "formatting" not in again.stdout
    assert again.stdout.splitlines()[-1] == "precious"
    assert probe(loop_device).stdout == uuid
    assert len([line for line in (workdir / "fstab").read_text().splitlines() if line.startswith("UUID=")]) == 1


def test_a_new_mount_path_moves_the_fstab_line(workdir, loop_device):
    old, new = workdir / "old", workdir / "new"
    result = in_namespace(
        workdir, f"sh {mount_script(workdir, loop_device, old)} && echo x > {old}/file && "
                 f"sh {mount_script(workdir, loop_device, new)} && cat {new}/file && mountpoint -q {old}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "x"  # the old path stays mounted until a reboot
    lines = [line for line in (workdir / "fstab").read_text().splitlines() if line.startswith("UUID=")]
    assert len(lines) == 1 and f" {new} ext4 " in lines[0]


def test_a_device_that_cannot_be_read_is_not_formatted(workdir, loop_device):
    # A detached loop device is still a block device, but reads give nothing: blkid -p then exits
    # 2, "no signature", exactly what the old script took for a blank volume.
    subprocess.run(["losetup", "-d", loop_device], check=True)
    assert probe(loop_device).returncode == 2
    data = workdir / "data"
    result = in_namespace(workdir, f"sh {mount_script(workdir, loop_device, data)}")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"volume {loop_device} cannot be read (its first 1048576 bytes gave 0): not formatted, not mounted; "
        "see dmesg, then run pulumi up again")
    assert "formatting" not in result.stdout
    assert "UUID=" not in (workdir / "fstab").read_text()


def test_a_signature_that_is_not_a_filesystem_is_left_alone(workdir, loop_device):
    subprocess.run(["mkswap", loop_device], check=True, capture_output=True)
    before = probe(loop_device).stdout
    result = in_namespace(workdir, f"sh {mount_script(workdir, loop_device, workdir / 'data')}")
    assert result.returncode == 1
    assert f"volume {loop_device} carries a signature that is not a mountable filesystem (" in result.stderr
    assert "TYPE=swap" in result.stderr
    assert probe(loop_device).stdout == before  # still the swap signature: nothing was written
    assert "UUID=" not in (workdir / "fstab").read_text()
