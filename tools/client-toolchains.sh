#!/usr/bin/env bash
# The toolchains `make clients-test` generates and compiles the Go and Java callers with
# (buf.gen.yaml, docs/clients.md): Debian's packages. Installs the missing ones where it may
# (root, with apt-get), else names them and fails. Go's gRPC and protobuf come as sources in
# Debian's GOPATH (/usr/share/gocode), Java's as jars in /usr/share/java: nothing is fetched
# beyond Debian's packages.
set -euo pipefail
packages=(
    golang-go protoc-gen-go protoc-gen-go-grpc
    golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev
    protobuf-compiler protobuf-compiler-grpc-java-plugin default-jdk-headless
    libprotobuf-java libgrpc-java libgeronimo-annotation-1.3-spec-java
)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
    echo "make clients-test needs Debian's ${missing[*]}: apt-get install them" >&2
    exit 1
fi
