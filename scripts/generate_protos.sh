#!/usr/bin/env bash
# Regenerates Sources/AlexNet/Formats/TensorBoard.pb.swift from Protos/tensorboard.proto. The output
# is committed, so building never needs these tools; rerun this only after editing the .proto.
#
# Tools (the versions the committed file was made with):
#   protoc 3.21.12           Debian's protobuf-compiler (apt-get install protobuf-compiler)
#   protoc-gen-swift 1.39.0  the plugin of the swift-protobuf version in Package.resolved; build it
#                            outside the repository:
#       git clone https://github.com/apple/swift-protobuf /tmp/swift-protobuf
#       git -C /tmp/swift-protobuf checkout 1.39.0
#       (cd /tmp/swift-protobuf && swift build -c release --product protoc-gen-swift)
#   and pass it as PROTOC_GEN_SWIFT=/tmp/swift-protobuf/.build/release/protoc-gen-swift, or put
#   it on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
plugin="${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}"
[ -x "$plugin" ] || { echo "generate_protos: protoc-gen-swift not found (set PROTOC_GEN_SWIFT; see this script's header)" >&2; exit 1; }
command -v protoc >/dev/null || { echo "generate_protos: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
echo "protoc: $(protoc --version); protoc-gen-swift: $("$plugin" --version)"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
protoc --plugin=protoc-gen-swift="$plugin" --proto_path=Protos \
    --swift_opt=Visibility=Internal --swift_out="$out" tensorboard.proto
target=Sources/AlexNet/Formats/TensorBoard.pb.swift
{
    echo "// GENERATED FILE, DO NOT EDIT: scripts/generate_protos.sh makes it from Protos/tensorboard.proto"
    echo "// ($(protoc --version), $("$plugin" --version), Visibility=Internal)."
    echo
    cat "$out/tensorboard.pb.swift"
} > "$target"
echo "wrote $target"
