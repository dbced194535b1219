"""Image references and registry credentials, as Docker reads them.

`docker stack deploy --with-registry-auth` sends the deployer's credentials for an image's
registry with the service, so every node pulls with them. The program does the same: the
Docker provider holds the registry's credentials and sends them with every service whose image
lives on the configured registry, decided here by the image's registry host, exactly as Docker
derives it from the reference.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable

DOCKER_HUB = "docker.io"
DIGITALOCEAN_REGISTRY = "registry.digitalocean.com"
# Names Docker treats as Docker Hub (distribution/reference normalises them to docker.io).
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

# A registry host as it appears at the start of an image reference: a DNS name or address,
# optionally with a port (no scheme, no path).
REGISTRY_HOST = re.compile(r"^(localhost|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+)(:[0-9]{1,5})?$")
# distribution/reference's grammar: [host[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
IMAGE_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{{32,}})?$"
)


def moving_tag(image: str) -> str | None:
    """Why `image` will not redeploy when its tag is pushed again, or None when it is pinned (a
    version tag or a digest). Swarm compares the service's image text: `api:latest` (or `api`,
    which is `api:latest`) re-pushed is the same text, so `up` changes nothing and the nodes keep
    the image they pulled first."""
    if not image or "@" in image:  # a digest pins the content itself
        return None
    name, colon, tag = image.rpartition(":")
    if colon and "/" not in tag:  # a ':' after the last '/' starts the tag; before it, a registry port
        if tag != "latest":
            return None
        shown = f"{image!r} uses the tag latest"
    else:
        shown = f"{image!r} has no tag (Docker reads it as :latest)"
    return (f"{shown}: pushing a new image under the same tag never redeploys (the service's image text does "
            "not change); pin a version tag or a digest (name@sha256:...) and change it to release")


def registry_server(host: str) -> str:
    """`host` as Docker names the registry: lower case, Docker Hub's aliases as docker.io."""
    host = host.lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


def image_registry(image: str) -> str:
    """The registry an image is pulled from. As Docker decides it: the first path component is a
    registry host only if it has a '.' or a ':' or is `localhost`; otherwise it is Docker Hub."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return registry_server(first)
    return DOCKER_HUB


def pulls_from(image: str, server: str) -> bool:
    """Whether pulling `image` needs the credentials of registry `server`."""
    return image_registry(image) == registry_server(server)


def credentials_from_docker_config(text: str, server: str) -> tuple[str, str]:
    """(username, password) for `server` in a Docker config JSON (`{"auths": {server: {"auth":
    base64("user:password")}}}`), the form DigitalOcean hands out registry credentials in."""
    try:
        entry = json.loads(text)["auths"][server]
        if "auth" in entry:
            username, colon, password = base64.b64decode(entry["auth"]).decode().partition(":")
        else:
            username, colon, password = entry["username"], ":", entry["password"]
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        # The credential itself must not appear in the message: name what is missing only.
        raise ValueError(f"the Docker credentials have no usable entry for {server} ({type(error).__name__})") from None
    if not colon or not username or not password:
        raise ValueError(f"the Docker credentials for {server} lack a username or password")
    return username, password


# On every service pulling from the registry: a keyed hash of its credentials. New credentials
# change it, and so update each such service in place, which is when the Docker provider sends
# the new credentials along (a service's `auth` would replace it: it is ForceNew).
CREDENTIALS_LABEL = "swarm.registry-credentials"


def provider_auth_addresses(images: Iterable[str], server: str) -> list[str]:
    """The Docker provider's `registry_auth` addresses under which it finds the credentials for
    each image pulled from `server`.

    kreuzwerker's provider (pulumi-docker's engine) looks a service's credentials up by the text
    before the image's first '/' (internal/provider/resource_docker_service_funcs.go,
    `fromRegistryAuth`) and files each `registry_auth` entry under its address's host
    (provider.go, `convertToHostname`). For `registry.example.com/nlp/api` that is the registry
    host; for a Docker Hub image written `acme/api` it is `acme`. So: one address per prefix. An
    image without a '/' (`postgres:13`) gets no credentials from the provider, whatever its
    registry: a private one always has a path.
    """
    return sorted({image.partition("/")[0] for image in images if pulls_from(image, server) and "/" in image})


def credentials_label(name_key: bytes, server: str, username: str, password: str) -> str:
    """CREDENTIALS_LABEL's value: 12 hex of HMAC-SHA256 under the stack's naming key, which says
    nothing about the credentials without the key."""
    if len(name_key) < 16:
        raise ValueError("the naming key must be at least 16 random bytes")
    return hmac.new(name_key, "\n".join((server, username, password)).encode(), hashlib.sha256).hexdigest()[:12]
