#!/usr/bin/env bash
# Regenerates global_kv/api/_pb (the protobuf message classes of etcd's v3 API) from
# etcd's own .proto files, as registries ship them under their licence (Apache-2.0):
#   rpc.proto, kv.proto, auth.proto    from the aetcd sdist on PyPI (LICENSE)
#   v3lock.proto, v3election.proto     from Debian's golang-etcd-server-dev (copyright.debian)
# The last two lose their gogoproto and google.api (HTTP mapping) options, which only
# Go's code generators read, and import rpc.proto / kv.proto by their names here.
# Needs pip, apt-get and grpcio-tools (pip install grpcio-tools):
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
(cd "$tmp" && apt-get download -q golang-etcd-server-dev > /dev/null)
dpkg -x "$tmp"/golang-etcd-server-dev_*.deb "$tmp"/deb
src="$tmp"/deb/usr/share/gocode/src/go.etcd.io/etcd/etcdserver/api
cp "$tmp"/deb/usr/share/doc/golang-etcd-server-dev/copyright "$here"/copyright.debian
for proto in "$src"/v3lock/v3lockpb/v3lock.proto "$src"/v3election/v3electionpb/v3election.proto; do
    "$python" - "$proto" "$here/$(basename "$proto")" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r'import "(gogoproto/gogo|google/api/annotations)\.proto";\n', "", text)
text = re.sub(r"option \(gogoproto\.[^;]*;\n", "", text)
text = re.sub(r"\{\s*option \(google\.api\.http\) = \{[^}]*\};\s*\}", "{}", text)
text = text.replace('"etcd/etcdserver/etcdserverpb/rpc.proto"', '"rpc.proto"')
text = text.replace('"etcd/mvcc/mvccpb/kv.proto"', '"kv.proto"')
open(sys.argv[2], "w").write(text)
PY
done
out="$here/../_pb"
mkdir -p "$out"
"$python" -m grpc_tools.protoc -I "$here" --python_out="$out" --pyi_out="$out" \
    rpc.proto kv.proto auth.proto v3lock.proto v3election.proto
# protoc writes top-level imports ("import kv_pb2"); the package needs relative ones.
sed -i -E 's/^import (auth|kv|rpc)_pb2 as/from . import \1_pb2 as/' "$out"/*_pb2.py "$out"/*_pb2.pyi
