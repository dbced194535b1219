#!/bin/sh
set -eu
keyring=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey | gpg --batch --yes --dearmor -o "$keyring"
curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list |
  sed "s#deb https://#deb [signed-by=$keyring] https://#g" > /etc/apt/sources.list.d/nvidia-container-toolkit.list
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q nvidia-container-toolkit

uuids=$(nvidia-smi --query-gpu=uuid --format=csv,noheader)
if [ -z "$uuids" ]; then
  echo "no GPU visible to nvidia-smi on $(hostname)" >&2
  exit 1
fi
resources=$(printf '%s\n' "$uuids" | sed 's/.*/"GPU=&"/' | paste -sd, -)
cat > /etc/docker/daemon.json <<EOF
{
  "log-driver": "json-file",
  "log-opts": {"max-size": "20m", "max-file": "5"},
  "default-runtime": "nvidia",
  "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
  "node-generic-resources": [$resources]
}
EOF

config=/etc/nvidia-container-runtime/config.toml
sed -i '/^#* *swarm-resource *=/d' "$config"
sed -i '1i swarm-resource = "DOCKER_RESOURCE_GPU"' "$config"
systemctl restart docker
