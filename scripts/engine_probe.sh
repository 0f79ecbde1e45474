# Shell functions (sourced): does a server answer? They need only bash and python3, so they work before anything
# is installed: on a fresh machine, in a chroot that sees only a host engine's socket.

docker_engine_answers() {
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    return 0
  fi
  python3 - <<'PY' 2>/dev/null
import os, socket, sys
path = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
client = socket.socket(socket.AF_UNIX)
client.settimeout(5)
client.connect(path)
client.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
response = b""
while chunk := client.recv(4096):
    response += chunk
sys.exit(0 if response.rstrip().endswith(b"OK") else 1)
PY
}

tcp_answers() {  # host port
  python3 -c "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)" "$1" "$2" \
    2>/dev/null
}

postgres_answers() {
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h 127.0.0.1 -p 5432
  else
    tcp_answers 127.0.0.1 5432
  fi
}

redis_answers() {
  python3 - <<'PY' 2>/dev/null
import socket, sys
client = socket.create_connection(("127.0.0.1", 6379), timeout=2)
client.sendall(b"PING\r\n")
sys.exit(0 if client.recv(64).startswith(b"+PONG") else 1)
PY
}
