//! `loadgen`: drives a running token service over HTTP and measures it.
//!
//! - `loadgen run`: issues tokens (`GET /tokens`) and validates each exactly once (`POST
//!   /tokens`), then reports pairs per second, latency percentiles of each request kind, every
//!   error and, with `--server-pid`, the server's CPU time per pair. It counts `isValid: true`
//!   answers, so a fast wrong answer is caught: the exit status is 0 only if every pair sent was
//!   valid and nothing failed. Two ways to offer load:
//!   - closed loop (default): C workers, each with its own keep-alive connection, each sending
//!     its next pair as soon as the last one is answered. It measures capacity; its latency is
//!     set by the queue of C requests (Little's law), not by the service alone.
//!   - open loop (`--rate R`): pair i is due at `start + i/R` whatever happened before, sent
//!     over at most C connections. Latency is measured from when the pair was DUE, not from when
//!     it could be sent, so a stall that delays later sends is charged to every request it
//!     delayed: the correction for coordinated omission that wrk2 and HdrHistogram make.
//! - `loadgen cold-start`: starts a server command and times process start to the first
//!   successful `GET /tokens` (a token issued and stored), then kills the process.
//! - `loadgen relay`: a TCP relay in front of another server (DynamoDB Local), timing every
//!   request/response exchange and counting the connections opened through it; see [`relay`].
//! - `loadgen disk`: page writes and `fdatasync` on a scratch file at a fixed commit rate: the
//!   disk's own floor under the embedded store's commits; see [`disk`].
//!
//! Latencies are in microseconds in HDR histograms (3 significant digits), recorded per worker
//! (closed loop) or per pair (open loop) and merged at the end.

mod disk;
mod open;
mod relay;

use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use shared::{IssueResponse, ValidateRequest, ValidateResponse};
use std::collections::BTreeMap;
use std::process::{Command as Process, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Highest latency the histograms track, microseconds (10 minutes).
const MAX_MICROS: u64 = 600_000_000;

#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about = "Load generator for the one-time token service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Issue tokens and validate each once, closed loop at a concurrency or open loop at a
    /// rate; exit 1 unless every pair was valid.
    Run(RunArgs),
    /// Start a server and time process start to its first successful `GET /tokens`.
    ColdStart(ColdStartArgs),
    /// Relay TCP to another server, timing each exchange; SIGUSR1 starts a new window, SIGTERM
    /// or SIGINT prints the window's figures as JSON and exits.
    Relay(relay::RelayArgs),
    /// Write pages and fdatasync a scratch file at a fixed commit rate; print the latency
    /// percentiles of each commit and of its end from when it was due.
    Disk(disk::DiskArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Base URL of the service.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Issue+validate pairs to measure (ignored with `--duration`).
    #[arg(short = 'n', long, default_value_t = 20_000)]
    pairs: u64,
    /// Measure for this many seconds instead of a number of pairs.
    #[arg(short = 'd', long)]
    duration: Option<f64>,
    /// Connections: closed loop, one worker per connection; open loop, the most pairs in
    /// flight at once (a due pair waits for a free connection, and that wait counts).
    #[arg(short = 'c', long, default_value_t = 64)]
    concurrency: u64,
    /// Open loop: offer this many pairs per second, on a fixed schedule.
    #[arg(long)]
    rate: Option<f64>,
    /// Pairs run before measuring (opens the connections, warms caches); also checked.
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
    /// Per-request timeout, in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// Process id of the server (same machine): report its CPU time over the measured phase.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

impl RunArgs {
    fn budget(&self) -> Budget {
        match self.duration {
            Some(seconds) => Budget::Time(Duration::from_secs_f64(seconds.max(0.0))),
            None => Budget::Pairs(self.pairs),
        }
    }
}

/// When a measured phase ends.
#[derive(Debug, Clone, Copy)]
enum Budget {
    Pairs(u64),
    Time(Duration),
}

#[derive(Debug, Args)]
struct ColdStartArgs {
    /// Base URL the started server will answer on (its port must be free now).
    #[arg(long)]
    url: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// The server command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
        Command::ColdStart(args) => runtime.block_on(cold_start(args)),
        Command::Relay(args) => runtime.block_on(relay::run(args)),
        Command::Disk(args) => disk::run(&args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

/// What one worker (or, merged, the whole run) saw.
struct Tally {
    issue: Histogram<u64>,
    validate: Histogram<u64>,
    /// Open loop: from when a pair was due to its validation's answer.
    pair: Histogram<u64>,
    /// Pairs sent (each counted once, whatever became of it).
    sent: u64,
    valid: u64,
    /// Error kind (e.g. `issue: HTTP 503`, `validate: already_used`) to count.
    errors: BTreeMap<String, u64>,
}

fn histogram() -> Result<Histogram<u64>, String> {
    // 1 us to 10 min at 3 significant digits; slower answers are counted as 10 min.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).map_err(|e| format!("histogram: {e}"))
}

impl Tally {
    fn new() -> Result<Self, String> {
        Ok(Self {
            issue: histogram()?,
            validate: histogram()?,
            pair: histogram()?,
            sent: 0,
            valid: 0,
            errors: BTreeMap::new(),
        })
    }

    fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: Self) -> Result<(), String> {
        let merging = |e| format!("merging histograms: {e}");
        self.issue.add(other.issue).map_err(merging)?;
        self.validate.add(other.validate).map_err(merging)?;
        self.pair.add(other.pair).map_err(merging)?;
        self.sent += other.sent;
        self.valid += other.valid;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        Ok(())
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Closed loop: `concurrency` workers send pairs back to back until `budget` is spent; returns
/// the merged tally and the wall-clock time it took.
async fn drive(
    client: &reqwest::Client,
    base: &str,
    budget: Budget,
    concurrency: u64,
) -> Result<(Tally, Duration), String> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers = match budget {
        Budget::Pairs(pairs) => concurrency.clamp(1, pairs.max(1)),
        Budget::Time(_) => concurrency.max(1),
    };
    let workers: Vec<_> = (0..workers)
        .map(|_| {
            let (client, next) = (client.clone(), Arc::clone(&next));
            let url = format!("{base}/tokens");
            tokio::spawn(async move {
                let mut tally = Tally::new()?;
                loop {
                    let go = match budget {
                        Budget::Pairs(pairs) => next.fetch_add(1, Ordering::Relaxed) < pairs,
                        Budget::Time(limit) => started.elapsed() < limit,
                    };
                    if !go {
                        break;
                    }
                    pair(&client, &url, Instant::now(), &mut tally).await;
                }
                Ok::<_, String>(tally)
            })
        })
        .collect();
    let mut total = Tally::new()?;
    for worker in workers {
        total.merge(worker.await.map_err(|e| format!("a worker failed: {e}"))??)?;
    }
    Ok((total, started.elapsed()))
}

/// One issue, then one validation of the token issued. The issue's latency (and the pair's)
/// counts from `due`: the moment it should have been sent (open loop), or was (closed loop).
async fn pair(client: &reqwest::Client, url: &str, due: Instant, tally: &mut Tally) {
    tally.sent += 1;
    let issued = fetch(client.get(url)).await;
    record(&mut tally.issue, due);
    let token = match issued.and_then(|body| parse::<IssueResponse>(&body)) {
        Ok(issued) => issued.token,
        Err(e) => return tally.error(format!("issue: {e}")),
    };
    let body = match serde_json::to_vec(&ValidateRequest::new(token)) {
        Ok(body) => body,
        Err(e) => return tally.error(format!("validate: encoding the request: {e}")),
    };
    let sent = Instant::now();
    let answer =
        fetch(client.post(url).header("content-type", "application/json").body(body)).await;
    record(&mut tally.validate, sent);
    record(&mut tally.pair, due);
    match answer.and_then(|body| parse::<ValidateResponse>(&body)) {
        Ok(answer) if answer.is_valid => tally.valid += 1,
        Ok(answer) => tally.error(format!("validate: isValid false ({:?})", answer.reason)),
        Err(e) => tally.error(format!("validate: {e}")),
    }
}

/// Sends `request`; the body of a `200`, or a short description of what went wrong.
async fn fetch(request: reqwest::RequestBuilder) -> Result<Vec<u8>, String> {
    let response = request.send().await.map_err(describe)?;
    let status = response.status();
    let body = response.bytes().await.map_err(describe)?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    Ok(body.to_vec())
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("unexpected body ({e})"))
}

/// Groups transport errors by kind so a thousand timeouts print as one line.
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "transport"
    };
    format!("{kind} error")
}

fn record(histogram: &mut Histogram<u64>, since: Instant) {
    let micros = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.clamp(1, MAX_MICROS));
}

fn client(timeout: Duration, connections: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

/// CPU time (user + system) of a process so far, in seconds, from `/proc/<pid>/stat`; it
/// includes threads that have ended. Fields 14 and 15 count clock ticks of `USER_HZ`, which
/// Linux fixes at 100 for user space on every architecture it runs on (proc(5)).
fn cpu_seconds(pid: &str) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("reading /proc/{pid}/stat: {e}"))?;
    // The command name (field 2) may hold spaces; the fields after its `)` are plain.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or("no ) in /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64, String> {
        fields.get(i).and_then(|f| f.parse().ok()).ok_or_else(|| format!("stat field {i}"))
    };
    // Fields 14 and 15 overall are 12 and 13 after the command name (state is field 3).
    Ok((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// CPU seconds of the server (if watched) and of loadgen itself, read together.
struct CpuClock {
    server: Option<String>,
}

impl CpuClock {
    fn read(&self) -> Result<(Option<f64>, f64), String> {
        let server = self.server.as_deref().map(cpu_seconds).transpose()?;
        Ok((server, cpu_seconds("self")?))
    }
}

async fn run(args: RunArgs) -> Result<bool, String> {
    let base = args.url.trim_end_matches('/').to_owned();
    let connections = usize::try_from(args.concurrency).unwrap_or(usize::MAX);
    let client = client(Duration::from_secs(args.timeout), connections)?;
    let mut ok = true;
    if args.warmup > 0 {
        let (warm, _) = drive(&client, &base, Budget::Pairs(args.warmup), args.concurrency).await?;
        if warm.valid != args.warmup {
            eprintln!(
                "loadgen: warm-up: {} of {} valid: {:?}",
                warm.valid, args.warmup, warm.errors
            );
            ok = false;
        }
    }
    let clock = CpuClock { server: args.server_pid.map(|pid| pid.to_string()) };
    let cpu_before = clock.read()?;
    let (tally, elapsed, late) = match args.rate {
        Some(rate) => open::drive(&client, &base, args.budget(), rate, args.concurrency).await?,
        None => {
            let (tally, elapsed) = drive(&client, &base, args.budget(), args.concurrency).await?;
            (tally, elapsed, Duration::ZERO)
        }
    };
    let cpu_after = clock.read()?;
    let server_cpu = cpu_before.0.zip(cpu_after.0).map(|(before, after)| after - before);
    ok &= tally.valid == tally.sent && tally.error_count() == 0 && tally.sent > 0;
    let report = Report {
        args: &args,
        tally: &tally,
        elapsed,
        server_cpu,
        loadgen_cpu: cpu_after.1 - cpu_before.1,
        late,
    };
    if args.json {
        println!("{}", report.json());
    } else {
        report.print();
    }
    if !ok {
        eprintln!("loadgen: FAILED: {} of {} pairs valid", tally.valid, tally.sent);
    }
    Ok(ok)
}

struct Report<'a> {
    args: &'a RunArgs,
    tally: &'a Tally,
    elapsed: Duration,
    /// CPU seconds the server used during the measured phase, if watched.
    server_cpu: Option<f64>,
    /// CPU seconds loadgen used during the measured phase.
    loadgen_cpu: f64,
    /// Open loop: the latest the pacer sent a pair after it was due (loadgen's own lag).
    late: Duration,
}

/// Milliseconds, from a histogram of microseconds.
fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

/// A histogram of microseconds as JSON: p50, p90, p99, p99.9, max and mean, in milliseconds.
fn latency_json(h: &Histogram<u64>) -> serde_json::Value {
    serde_json::json!({
        "p50_ms": ms(h, 0.5), "p90_ms": ms(h, 0.9), "p99_ms": ms(h, 0.99),
        "p999_ms": ms(h, 0.999), "max_ms": h.max() as f64 / 1000.0,
        "mean_ms": h.mean() / 1000.0,
    })
}

impl Report<'_> {
    fn pairs_per_second(&self) -> f64 {
        self.tally.sent as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    fn per_pair_us(&self, seconds: f64) -> f64 {
        seconds * 1e6 / self.tally.sent.max(1) as f64
    }

    fn both(&self) -> Histogram<u64> {
        let mut both = self.tally.issue.clone();
        // Same settings on both sides, so adding cannot fail; if it did, issue alone is shown.
        let _ = both.add(&self.tally.validate);
        both
    }

    fn mode(&self) -> String {
        match self.args.rate {
            Some(rate) => {
                format!("open loop at {rate:.0} pairs/s, at most {}", self.args.concurrency)
            }
            None => format!("closed loop, concurrency {}", self.args.concurrency),
        }
    }

    fn print(&self) {
        let t = self.tally;
        println!(
            "{} pairs in {:.2} s, {}: {:.0} pairs/s ({:.0} requests/s)",
            t.sent,
            self.elapsed.as_secs_f64(),
            self.mode(),
            self.pairs_per_second(),
            2.0 * self.pairs_per_second()
        );
        println!("latency ms     p50      p99    p99.9      max     mean");
        let mut rows = vec![("issue", &t.issue), ("validate", &t.validate)];
        let both = self.both();
        rows.push(("all", &both));
        if self.args.rate.is_some() {
            rows.push(("pair", &t.pair));
        }
        for (name, h) in rows {
            println!(
                "{name:<9} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                ms(h, 0.5),
                ms(h, 0.99),
                ms(h, 0.999),
                h.max() as f64 / 1000.0,
                h.mean() / 1000.0
            );
        }
        if let Some(cpu) = self.server_cpu {
            println!("server CPU {cpu:.2} s, {:.1} us per pair", self.per_pair_us(cpu));
        }
        println!(
            "loadgen CPU {:.2} s, {:.1} us per pair",
            self.loadgen_cpu,
            self.per_pair_us(self.loadgen_cpu)
        );
        if self.args.rate.is_some() {
            println!("pacer at most {:.3} ms late", self.late.as_secs_f64() * 1000.0);
        }
        println!("valid {} of {}; errors {}", t.valid, t.sent, t.error_count());
        for (kind, count) in &t.errors {
            println!("  {count} x {kind}");
        }
    }

    fn json(&self) -> serde_json::Value {
        let (t, a) = (self.tally, self.args);
        serde_json::json!({
            "mode": if a.rate.is_some() { "open" } else { "closed" },
            "rate": a.rate,
            "pairs": t.sent,
            "concurrency": a.concurrency,
            "seconds": self.elapsed.as_secs_f64(),
            "pairs_per_s": self.pairs_per_second(),
            "issue": latency_json(&t.issue),
            "validate": latency_json(&t.validate),
            "all": latency_json(&self.both()),
            "pair": latency_json(&t.pair),
            "server_cpu_s": self.server_cpu,
            "server_cpu_us_per_pair": self.server_cpu.map(|cpu| self.per_pair_us(cpu)),
            "loadgen_cpu_s": self.loadgen_cpu,
            "pacer_late_max_ms": self.late.as_secs_f64() * 1000.0,
            "valid": t.valid,
            "errors": t.error_count(),
            "error_kinds": t.errors,
        })
    }
}

async fn cold_start(args: ColdStartArgs) -> Result<bool, String> {
    let url = format!("{}/tokens", args.url.trim_end_matches('/'));
    let client = client(Duration::from_millis(args.timeout_ms), 1)?;
    let (program, rest) = args.command.split_first().ok_or("no server command given")?;
    let deadline = Duration::from_millis(args.timeout_ms);
    // The clock starts before fork/exec, so it includes loading the binary.
    let started = Instant::now();
    let mut child = Process::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {program}: {e}"))?;
    let outcome = loop {
        if let Ok(body) = fetch(client.get(&url)).await
            && parse::<IssueResponse>(&body).is_ok()
        {
            break Ok(started.elapsed());
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("{program} exited before answering: {status}"));
        }
        if started.elapsed() > deadline {
            break Err(format!("{program} did not answer within {} ms", args.timeout_ms));
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let elapsed = outcome?;
    println!("{:.2}", elapsed.as_secs_f64() * 1000.0);
    Ok(true)
}
