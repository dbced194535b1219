"""Ingress: HTTPS from the load balancer to the services, through a proxy on the ingress pool.
Offers `plan_ingress` (the stack file's `x-ingress` routes, checked, and the proxy service that
serves them) for the program and the plan; `swarm:ingress` itself is read in swarm/config/ingress.py.
"""

from swarm.ingress.routes import (
    HEALTH_PATH,
    PROXY_SERVICE,
    ROUTES_NETWORK,
    IngressPlan,
    Route,
    plan_ingress,
    proxy_config,
    read_routes,
)

__all__ = [
    "HEALTH_PATH",
    "IngressPlan",
    "PROXY_SERVICE",
    "ROUTES_NETWORK",
    "Route",
    "plan_ingress",
    "proxy_config",
    "read_routes",
]
