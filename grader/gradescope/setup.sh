#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (grader/gradescope/bundle.py wrote it).
# It needs Python 3.11 or newer (on Gradescope: the Ubuntu 24.04 base image). pip honours PIP_NO_INDEX and
# PIP_FIND_LINKS, so the same script installs offline from a wheel cache.
set -euo pipefail
source_dir="$(cd "$(dirname "$0")" && pwd)"
python=python3
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "this autograder needs Python 3.11 or newer; choose Gradescope's Ubuntu 24.04 base image" >&2
  exit 1
fi
missing=()
"$python" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v bwrap >/dev/null || missing+=(bubblewrap)
if ((${#missing[@]})); then
  # Offline (a local test) this may fail: bubblewrap is optional (student code then runs as uid 65534), venv is not.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || echo "could not install ${missing[*]}" >&2
fi
"$python" -m venv /autograder/venv
/autograder/venv/bin/pip install -q --disable-pip-version-check -r "$source_dir/requirements.txt"
chmod +x "$source_dir/run_autograder"
cd "$source_dir" && /autograder/venv/bin/python -m grader.gradescope.autograder prepare
