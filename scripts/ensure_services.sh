#!/usr/bin/env bash
# Starts what is asked for and not running; never stops or reconfigures a server that already answers. Groups:
#   servers         PostgreSQL (127.0.0.1:5432, trust for user postgres over TCP, database `test`) and Redis
#                   (127.0.0.1:6379), installed from Debian when missing and started without systemd
#   docker          the Docker engine; failing to start it is an error (the tests need it)
#   docker-or-bwrap the Docker engine if it can run here, else a warning: student code then runs under bubblewrap
# No group: servers and docker (what the tests need).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/engine_probe.sh"

install_missing() {
  "$here/install_system_packages.sh" "$@"
}

start_postgres() {
  postgres_answers && { ensure_test_database; return 0; }
  install_missing servers
  local version cluster_dir
  version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
  if [[ -z "$(pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main"')" ]]; then
    pg_createcluster "$version" main >/dev/null
  fi
  cluster_dir="/etc/postgresql/$version/main"
  # Trust for the tests' user over loopback TCP only, ahead of the packaged password rules.
  if ! grep -q "cnn-grader: test access" "$cluster_dir/pg_hba.conf"; then
    { echo "# cnn-grader: test access (scripts/ensure_services.sh)"
      echo "host all postgres 127.0.0.1/32 trust"
      echo "host all postgres ::1/128 trust"
      cat "$cluster_dir/pg_hba.conf"; } > "$cluster_dir/pg_hba.conf.new"
    mv "$cluster_dir/pg_hba.conf.new" "$cluster_dir/pg_hba.conf"
  fi
  echo "starting PostgreSQL $version on 127.0.0.1:5432"
  if pg_ctlcluster --skip-systemctl-redirect "$version" main status >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  else
    pg_ctlcluster --skip-systemctl-redirect "$version" main start -- -o "-c listen_addresses=127.0.0.1 -c port=5432"
  fi
  for _ in $(seq 60); do postgres_answers && break; sleep 0.5; done
  postgres_answers || { echo "PostgreSQL did not start; see /var/log/postgresql/" >&2; exit 1; }
  ensure_test_database
}

ensure_test_database() {
  command -v psql >/dev/null || return 0
  local exists
  exists="$(psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" \
    2>/dev/null || true)"
  if [[ "$exists" != "1" ]]; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE test" >/dev/null 2>&1 \
      || echo "note: could not create database test on 127.0.0.1:5432 (the running server does not trust user postgres?)" >&2
  fi
}

start_redis() {
  redis_answers && return 0
  install_missing servers
  echo "starting Redis on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do redis_answers && break; sleep 0.5; done
  redis_answers || { echo "Redis did not start; see /var/log/redis/ci.log" >&2; exit 1; }
}

# A cgroup v1 host with cgroup2 mounted beside it ("hybrid") may leave controllers that no v1 hierarchy took
# (here: hugetlb) in cgroup2; crun refuses such a layout ("cgroups in hybrid mode not supported"). Mounting each
# of them as a v1 hierarchy, as systemd's hybrid mode does, leaves cgroup2 without controllers (runc works with
# both layouts). 0 when crun can create containers here.
crun_cgroups_ready() {
  local unified=/sys/fs/cgroup/unified controller
  [[ -f $unified/cgroup.controllers ]] || return 0  # pure cgroup v2 or pure v1: nothing to do
  for controller in $(cat "$unified/cgroup.controllers"); do
    mkdir -p "/sys/fs/cgroup/$controller" 2>/dev/null || return 1
    mount -t cgroup -o "$controller" cgroup "/sys/fs/cgroup/$controller" 2>/dev/null || return 1
  done
  [[ -z "$(tr -d ' \n' < "$unified/cgroup.controllers")" ]]
}

# crun (C) instead of runc (Go) as the engine's default runtime when it is installed and usable: the same OCI
# containers (namespaces, cgroup limits, seccomp, capabilities) for less CPU per container, measured on this
# project's correctness job (bench.sandbox_cpu, 2 x 30 grades each): 0.386 -> 0.357 CPU s per grade, most of it
# runc's own init inside each container (26 ms of the container's CPU: its Go start and its compilation of the
# default seccomp profile; crun's: 5-6 ms). Without crun the engine keeps runc.
runtime_flags() {
  local crun
  crun="$(command -v crun || true)"
  [[ -n "$crun" ]] && crun_cgroups_ready && echo "--add-runtime crun=$crun --default-runtime crun"
  return 0
}

# 0 when the engine answers (started here if need be), 1 when it cannot run on this host.
start_docker() {
  docker_engine_answers && return 0
  command -v dockerd >/dev/null || return 1
  local runtime
  runtime="$(runtime_flags)"
  echo "starting the Docker engine${runtime:+ (runtime crun)}"
  mkdir -p /var/log
  # setsid: the engine must outlive the shell (and process group) that happened to start it
  # shellcheck disable=SC2086  # runtime: zero or more flags
  setsid nohup dockerd --iptables=false --bridge=none $runtime >>/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 60); do docker_engine_answers && return 0; sleep 0.5; done
  return 1
}

(($#)) || set -- servers docker
for group in "$@"; do
  case "$group" in
    servers) start_postgres; start_redis ;;
    docker)
      start_docker || { echo "the Docker engine did not start; see /var/log/dockerd.log" >&2; exit 1; } ;;
    docker-or-bwrap)
      start_docker || echo "the Docker engine cannot run here (see /var/log/dockerd.log); student code will run" \
        "under bubblewrap instead" >&2 ;;
    *) echo "ensure_services.sh: unknown group $group" >&2; exit 2 ;;
  esac
done
