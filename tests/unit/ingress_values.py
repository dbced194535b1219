"""swarm:ingress values for ingress/test_routes.py and config/test_ingress.py: a cluster with an `edge`
pool taking the proxy, and PEM texts for an uploaded certificate."""

from __future__ import annotations

LEAF = "-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----"
INTERMEDIATE = "-----BEGIN CERTIFICATE-----\nintermediate\n-----END CERTIFICATE-----"
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\ntop-secret-key-material\n-----END PRIVATE KEY-----"


def config_values(**values):
    base = {
        "region": "fra1",
        "adminCidrs": ["203.0.113.0/24"],
        "nodePools": {
            "manager": {"role": "manager", "count": 1, "size": "s-2vcpu-4gb"},
            "edge": {"role": "worker", "count": 2, "size": "s-1vcpu-2gb", "labels": {"type": "edge"}},
        },
        "ingress": {"pool": "edge", "domains": ["example.com"]},
    }
    return {**base, **values}
