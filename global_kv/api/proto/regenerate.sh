#!/usr/bin/env bash
# Regenerates global_kv/api/_pb (the protobuf message classes of etcd's v3 API) from
# etcd's own .proto files, as the aetcd sdist on PyPI ships them under their licence
# (Apache-2.0, LICENSE beside this script). Needs grpcio-tools (pip install grpcio-tools).
#   bash global_kv/api/proto/regenerate.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip download -q --no-deps --no-binary :all: aetcd==1.0.0 -d "$tmp"
tar xzf "$tmp"/aetcd-1.0.0.tar.gz -C "$tmp"
cp "$tmp"/aetcd-1.0.0/proto/rpc.proto "$tmp"/aetcd-1.0.0/proto/kv.proto "$tmp"/aetcd-1.0.0/proto/auth.proto "$here"/
cp "$tmp"/aetcd-1.0.0/LICENSE "$here"/LICENSE
out="$here/../_pb"
mkdir -p "$out"
"$python" -m grpc_tools.protoc -I "$here" --python_out="$out" --pyi_out="$out" rpc.proto kv.proto auth.proto
# protoc writes top-level imports ("import kv_pb2"); the package needs relative ones.
sed -i -E 's/^import (auth|kv)_pb2 as/from . import \1_pb2 as/' "$out"/*_pb2.py
sed -i -E 's/^import (auth|kv)_pb2 as/from . import \1_pb2 as/' "$out"/*_pb2.pyi
