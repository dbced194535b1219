"""The sandbox's one image (tests/sandbox/harness.py): busybox `FROM scratch`, built on a
sandbox host (no registry is reachable) and saved once to a tar in the workdir, which
`Sandbox.load_image` loads on every host."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.sandbox.harness_host import Host

DEFAULT_IMAGE = "swarm-sandbox/busybox:1"

_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["sh"]
"""


def image_tar(workdir: Path, tag: str, busybox: bytes) -> Path:
    """Where the image is cached: named after its tag, its Dockerfile and the busybox binary."""
    digest = hashlib.sha256(tag.encode() + _DOCKERFILE.encode() + busybox).hexdigest()
    return workdir / "images" / f"{digest[:16]}.tar"


def build_image(builder: Host, tag: str, busybox: bytes, tar: Path) -> None:
    """Build the busybox image on `builder` and save it to `tar` (written whole or not at all)."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        for name, data, mode in (("Dockerfile", _DOCKERFILE.encode(), 0o644),
                                 ("busybox", busybox, 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    # The legacy builder needs no BuildKit frontend image (there is no registry).
    builder._run(["env", "DOCKER_BUILDKIT=0", "docker", "build", "-q", "-t", tag, "-"],
                 input=context.getvalue())
    tar.parent.mkdir(parents=True, exist_ok=True)
    partial = tar.with_suffix(".partial")
    with open(partial, "wb") as out:
        builder._run(["docker", "save", tag], stdout=out)
    partial.replace(tar)
