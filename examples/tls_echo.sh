#!/usr/bin/env bash
# examples/tls_echo.sh — makes a self-signed certificate for localhost (and 127.0.0.1) with the
# openssl command, valid for a day, then runs a TLS example with it (tls_echo, starttls).
# Usage: tls_echo.sh EXAMPLE
set -euo pipefail
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" 2> /dev/null
timeout 20 "$1" "$dir/cert.pem" "$dir/key.pem"
