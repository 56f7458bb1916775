#!/usr/bin/env bash
# Makes the sandbox tests runnable for real on a fresh Debian machine (root):
# installs Docker, bubblewrap and mmdebstrap where missing, starts dockerd when
# no daemon answers, and builds the sandbox image with the project's builder.
# Idempotent: a second run finds everything in place and does nothing.
set -euo pipefail

cd "$(dirname "$0")/.."

need=()
# The engine, not the client: a machine may ship a docker client without dockerd.
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
if ((${#need[@]})); then
    echo "sandbox setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "sandbox setup: starting dockerd"
    log="${TMPDIR:-/tmp}/dockerd.log"
    nohup dockerd >"$log" 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        echo "sandbox setup: dockerd did not answer within 60 s; its log:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
fi

# Builds only when the recipe's tag is missing (mmdebstrap: no registry needed).
python -m evolve.cli_sandbox build --method mmdebstrap
python -m evolve.cli_sandbox check sandbox=docker
