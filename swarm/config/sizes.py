"""DigitalOcean droplet sizes: what a slug offers and what it costs.

The table is read offline (preview, the plan command and the capacity check must work without
an API token), so it is kept here by hand. Prices are DigitalOcean's list prices in USD per month
(GPU plans: hourly list price x 672 h, DigitalOcean's monthly billing cap); they are estimates
for planning, not invoices. Add a row when DigitalOcean adds a plan.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3

# Memory swarm cannot hand to tasks on any node: kernel, dockerd, containerd, sshd, the
# DigitalOcean agent. 512 MiB plus 5 % covers an idle Ubuntu 24.04 droplet running Docker.
OS_RESERVED_MEMORY_BYTES = 512 * 1024**2
OS_RESERVED_MEMORY_FRACTION = 0.05
# CPU kept back for the same daemons, in vCPUs.
OS_RESERVED_CPUS = 0.1


@dataclass(frozen=True)
class DropletSize:
    slug: str
    vcpus: int
    memory_gib: float
    price_monthly: float
    gpus: int = 0
    regions: frozenset[str] | None = None  # where DigitalOcean sells it; None: in every region

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * GIB)

    @property
    def allocatable_memory_bytes(self) -> int:
        """Memory left for swarm tasks once the OS and Docker have taken their share."""
        reserved = OS_RESERVED_MEMORY_BYTES + int(self.memory_bytes * OS_RESERVED_MEMORY_FRACTION)
        return max(self.memory_bytes - reserved, 0)

    @property
    def allocatable_cpus(self) -> float:
        return max(self.vcpus - OS_RESERVED_CPUS, 0.0)


def _gpu_monthly(hourly: float) -> float:
    return round(hourly * 672, 2)


# The regions that take new droplets, as DigitalOcean's region list gives them (October 2026).
# Basic plans are sold in every one of them (docs.digitalocean.com/products/droplets, "Regional
# Availability"). A region missing here is refused at preview: add it when DigitalOcean opens it.
REGIONS = frozenset({
    "ams3", "atl1", "blr1", "fra1", "lon1", "mem1", "mkc1", "nyc1", "nyc2", "nyc3", "ric1",
    "sfo2", "sfo3", "sgp1", "syd1", "tor1",
})
# GPU Droplets are sold in three North American datacenters, and the H100 also in Amsterdam
# (docs.digitalocean.com/products/droplets/details/gpu-availability). Elsewhere the droplet's
# create fails in the middle of `up`; the preview refuses it instead.
_GPU_REGIONS = frozenset({"atl1", "nyc2", "tor1"})
_H100_REGIONS = _GPU_REGIONS | {"ams3"}


_SIZES = [
    # Basic (shared CPU)
    DropletSize("s-1vcpu-512mb-10gb", 1, 0.5, 4),
    DropletSize("s-1vcpu-1gb", 1, 1, 6),
    DropletSize("s-1vcpu-2gb", 1, 2, 12),
    DropletSize("s-2vcpu-2gb", 2, 2, 18),
    DropletSize("s-2vcpu-4gb", 2, 4, 24),
    DropletSize("s-4vcpu-8gb", 4, 8, 48),
    DropletSize("s-8vcpu-16gb", 8, 16, 96),
    # Basic, premium AMD
    DropletSize("s-1vcpu-1gb-amd", 1, 1, 7),
    DropletSize("s-1vcpu-2gb-amd", 1, 2, 14),
    DropletSize("s-2vcpu-4gb-amd", 2, 4, 28),
    DropletSize("s-4vcpu-8gb-amd", 4, 8, 56),
    DropletSize("s-8vcpu-16gb-amd", 8, 16, 112),
    # Basic, premium Intel
    DropletSize("s-1vcpu-1gb-intel", 1, 1, 7),
    DropletSize("s-1vcpu-2gb-intel", 1, 2, 14),
    DropletSize("s-2vcpu-4gb-intel", 2, 4, 28),
    DropletSize("s-4vcpu-8gb-intel", 4, 8, 56),
    DropletSize("s-8vcpu-16gb-intel", 8, 16, 112),
    # General purpose (dedicated CPU)
    DropletSize("g-2vcpu-8gb", 2, 8, 63),
    DropletSize("g-4vcpu-16gb", 4, 16, 126),
    DropletSize("g-8vcpu-32gb", 8, 32, 252),
    DropletSize("g-16vcpu-64gb", 16, 64, 504),
    DropletSize("g-32vcpu-128gb", 32, 128, 1008),
    DropletSize("g-40vcpu-160gb", 40, 160, 1260),
    # CPU-optimised
    DropletSize("c-2", 2, 4, 42),
    DropletSize("c-4", 4, 8, 84),
    DropletSize("c-8", 8, 16, 168),
    DropletSize("c-16", 16, 32, 336),
    DropletSize("c-32", 32, 64, 672),
    # Memory-optimised: the machine-learning workers' natural home
    DropletSize("m-2vcpu-16gb", 2, 16, 84),
    DropletSize("m-4vcpu-32gb", 4, 32, 168),
    DropletSize("m-8vcpu-64gb", 8, 64, 336),
    DropletSize("m-16vcpu-128gb", 16, 128, 672),
    DropletSize("m-24vcpu-192gb", 24, 192, 1008),
    DropletSize("m-32vcpu-256gb", 32, 256, 1344),
    # GPU
    DropletSize("gpu-rtx4000x1-20gb", 8, 32, _gpu_monthly(0.76), gpus=1, regions=_GPU_REGIONS),
    DropletSize("gpu-rtx6000adax1-48gb", 8, 64, _gpu_monthly(1.89), gpus=1, regions=_GPU_REGIONS),
    DropletSize("gpu-l40sx1-48gb", 8, 64, _gpu_monthly(1.57), gpus=1, regions=_GPU_REGIONS),
    DropletSize("gpu-h100x1-80gb", 20, 240, _gpu_monthly(3.39), gpus=1, regions=_H100_REGIONS),
    DropletSize("gpu-h100x8-640gb", 160, 1920, _gpu_monthly(23.92), gpus=8, regions=_H100_REGIONS),
]

# A regional load balancer's list price per node (its `size_unit`), USD per month.
LOAD_BALANCER_NODE_MONTHLY_USD = 12.0

SIZES: dict[str, DropletSize] = {size.slug: size for size in _SIZES}


def offered_in(size: DropletSize, region: str) -> bool:
    """Whether DigitalOcean sells `size` in `region` (a region of REGIONS)."""
    return size.regions is None or region in size.regions

# A block-storage volume's list price, USD per GiB per month (docs.digitalocean.com/products/volumes/details/pricing).
VOLUME_GB_MONTHLY_USD = 0.10

# DigitalOcean Spaces (the backups' bucket): the subscription's list price includes 250 GiB of
# storage (and 1 TiB of outbound transfer); each further GiB stored is billed per month.
SPACES_MONTHLY_USD = 5.0
SPACES_INCLUDED_GB = 250
SPACES_EXTRA_GB_USD = 0.02

# DigitalOcean Uptime (alerts on the routed hosts, docs/alerts.md): "Each Uptime check costs $1.00
# per month, billed in hourly increments. There is no additional cost for alerts"
# (docs.digitalocean.com/products/uptime/details/pricing). Earlier DigitalOcean pages offered a
# free allowance of checks per account; the current page names none, and an account's allowance
# is shared with whatever else it checks, so the plan counts every check at the list price.
UPTIME_CHECK_MONTHLY_USD = 1.0
# DigitalOcean Monitoring (the droplet agent and its alert policies) has no charge.
MONITORING_MONTHLY_USD = 0.0
