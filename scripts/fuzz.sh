#!/usr/bin/env bash
# Fuzzes token validation with cargo-fuzz (libFuzzer) for a bounded time; exits non-zero on any
# crash (a panic, a 5xx, an accepted token, a sanitizer report).
#   scripts/fuzz.sh [SECONDS]     total fuzzing time, split evenly over the targets (default 60)
# Env: FUZZ_SANITIZER=address|none (default address), FUZZ_TARGETS="validate_body ..." (default all).
# Longer runs and reproducing a crash: fuzz/README.md.
#
# Only stable Rust exists here: cargo-fuzz's nightly flags (-Zsanitizer, -Cpasses=sancov-module)
# are accepted by stable rustc with RUSTC_BOOTSTRAP=1; -Zbuild-std is not used (no rust-src).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '==> %s\n' "$*" >&2; }

total=${1:-60}
sanitizer=${FUZZ_SANITIZER:-address}
targets=(${FUZZ_TARGETS:-validate_body validate_token})
per_target=$(( total / ${#targets[@]} ))
[ "$per_target" -ge 1 ] || { echo "SECONDS must be at least ${#targets[@]}" >&2; exit 2; }

scripts/install-tools.sh fuzz   # cargo install cargo-fuzz --locked, if missing

export RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
# The harness's embedded store lives in a temporary directory that libFuzzer's exit() never
# removes: keep them all in one place and remove it afterwards.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export TMPDIR=$work

# Seeds: fuzz/seeds/<target>/ (committed), plus every string of the attack corpus if present,
# both as a token and as a POST body ({"token": ...}, or the string itself if it is a JSON body).
attack=backend/tests/attacks/corpus.json
if [ -f "$attack" ]; then
  python3 - "$attack" "$work/attack" <<'PY'
import hashlib, json, os, sys
src, out = sys.argv[1], sys.argv[2]
def strings(v):
    if isinstance(v, str): yield v
    elif isinstance(v, list):
        for x in v: yield from strings(x)
    elif isinstance(v, dict):
        for x in v.values(): yield from strings(x)
def body_of(s):
    try:
        json.loads(s)
        return s
    except ValueError:
        return json.dumps({"token": s})
seen = 0
for target, data in (("validate_token", lambda s: s), ("validate_body", body_of)):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    for s in strings(json.load(open(src, encoding="utf-8"))):
        b = data(s).encode("utf-8", "surrogatepass")
        open(os.path.join(out, target, hashlib.sha1(b).hexdigest()), "wb").write(b)
        seen += 1
print(f"==> {seen // 2} seed strings from {src}", file=sys.stderr)
PY
else
  say "no $attack: seeding from fuzz/seeds only"
fi

say "cargo fuzz build (sanitizer: $sanitizer)"
(cd fuzz && cargo fuzz build -O --sanitizer "$sanitizer")
failed=()
for target in "${targets[@]}"; do
  say "fuzzing $target for ${per_target}s"
  mkdir -p "fuzz/corpus/$target"
  seeds=("$PWD/fuzz/seeds/$target")
  [ -d "$work/attack/$target" ] && seeds+=("$work/attack/$target")
  # The first directory collects new inputs (kept between runs, ignored by git); the others
  # are read only. libFuzzer's progress goes to a log; its tail is shown.
  log=fuzz/target/$target.log
  if (cd fuzz && cargo fuzz run -O --sanitizer "$sanitizer" "$target" \
        "corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$per_target" -max_len=9000 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1) > "$log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added)' "$log" >&2 || true
  else
    tail -n 60 "$log" >&2
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/; see fuzz/README.md)" >&2
  exit 1
fi
say "no crashes in ${targets[*]}"
