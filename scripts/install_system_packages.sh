#!/usr/bin/env bash
# Debian packages, by group; installs only what is missing. Groups:
#   sandbox              bubblewrap (the fallback sandbox) and debootstrap (builds the sandbox's root filesystem)
#   docker               docker.io and crun (a lighter OCI runtime than runc, see ensure_services.sh)
#   docker-if-no-engine  docker.io, unless a Docker engine already answers (e.g. a host engine's socket)
#   servers              postgresql (unless one answers on 127.0.0.1) and redis-server (the fault tests start
#                        private instances of it, so it is installed even where a Redis answers)
#   browser              chromium and chromium-driver (browser tests), npm (axe-core for them)
#   compose              docker-compose (the compose file check)
# No group: everything `make test` needs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/engine_probe.sh"
(($#)) || set -- sandbox docker servers browser compose
need=()
for group in "$@"; do
  case "$group" in
    sandbox)
      command -v bwrap >/dev/null || need+=(bubblewrap)
      command -v debootstrap >/dev/null || need+=(debootstrap) ;;
    docker)
      command -v dockerd >/dev/null || need+=(docker.io)
      command -v crun >/dev/null || need+=(crun) ;;  # the engine's runtime when usable (ensure_services.sh)
    docker-if-no-engine)
      docker_engine_answers || command -v dockerd >/dev/null || need+=(docker.io) ;;
    servers)
      postgres_answers || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
      command -v redis-server >/dev/null || need+=(redis-server) ;;
    browser)
      command -v chromium >/dev/null || need+=(chromium)
      command -v chromedriver >/dev/null || need+=(chromium-driver)
      command -v npm >/dev/null || need+=(npm) ;;
    compose)
      command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || need+=(docker-compose) ;;
    *) echo "install_system_packages.sh: unknown group $group" >&2; exit 2 ;;
  esac
done
if ((${#need[@]})); then
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
