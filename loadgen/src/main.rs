//! `loadgen`: drives a running token service over HTTP and measures it.
//!
//! - `loadgen run`: issues N tokens (`GET /tokens`) and validates each exactly once
//!   (`POST /tokens`) from C concurrent workers over keep-alive connections, then reports pairs
//!   per second, latency percentiles (p50, p99, p99.9, max) of each request kind, and every
//!   error. It counts `isValid: true` answers, so a fast wrong answer is caught: the exit status
//!   is 0 only if exactly N validations were valid and nothing failed.
//! - `loadgen cold-start`: starts a server command and times process start to the first
//!   successful `GET /tokens` (a token issued and stored), then kills the process.
//!
//! Latencies are measured per request from send to the end of the body, in microseconds, into
//! HDR histograms (3 significant digits); one histogram per worker, merged at the end, so the
//! workers share nothing but a counter.

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
    /// Issue N tokens and validate each once, at a given concurrency; exit 1 unless all N are
    /// valid.
    Run(RunArgs),
    /// Start a server and time process start to its first successful `GET /tokens`.
    ColdStart(ColdStartArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Base URL of the service.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Issue+validate pairs to measure.
    #[arg(short = 'n', long, default_value_t = 20_000)]
    pairs: u64,
    /// Concurrent workers, each with its own keep-alive connection.
    #[arg(short = 'c', long, default_value_t = 64)]
    concurrency: u64,
    /// Pairs run before measuring (opens the connections, warms caches); also checked.
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
    /// Per-request timeout, in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
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

/// What one worker saw.
struct Tally {
    issue: Histogram<u64>,
    validate: Histogram<u64>,
    valid: u64,
    /// Error kind (e.g. `issue: HTTP 503`, `validate: already_used`) to count.
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Result<Self, String> {
        // 1 us to 10 min at 3 significant digits; slower answers are counted as 10 min.
        let histogram =
            || Histogram::new_with_bounds(1, MAX_MICROS, 3).map_err(|e| format!("histogram: {e}"));
        Ok(Self { issue: histogram()?, validate: histogram()?, valid: 0, errors: BTreeMap::new() })
    }

    fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: Self) -> Result<(), String> {
        self.issue.add(other.issue).map_err(|e| format!("merging histograms: {e}"))?;
        self.validate.add(other.validate).map_err(|e| format!("merging histograms: {e}"))?;
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

/// Issues and validates `pairs` tokens from `concurrency` workers; returns the merged tally
/// and the wall-clock time it took.
async fn drive(
    client: &reqwest::Client,
    base: &str,
    pairs: u64,
    concurrency: u64,
) -> Result<(Tally, Duration), String> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.clamp(1, pairs.max(1)))
        .map(|_| {
            let (client, next) = (client.clone(), Arc::clone(&next));
            let (issue_url, validate_url) = (format!("{base}/tokens"), format!("{base}/tokens"));
            tokio::spawn(async move {
                let mut tally = Tally::new()?;
                while next.fetch_add(1, Ordering::Relaxed) < pairs {
                    pair(&client, &issue_url, &validate_url, &mut tally).await;
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

/// One issue, then one validation of the token issued.
async fn pair(client: &reqwest::Client, issue_url: &str, validate_url: &str, tally: &mut Tally) {
    let sent = Instant::now();
    let issued = fetch(client.get(issue_url)).await;
    record(&mut tally.issue, sent);
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
        fetch(client.post(validate_url).header("content-type", "application/json").body(body))
            .await;
    record(&mut tally.validate, sent);
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

async fn run(args: RunArgs) -> Result<bool, String> {
    let base = args.url.trim_end_matches('/').to_owned();
    let connections = usize::try_from(args.concurrency).unwrap_or(usize::MAX);
    let client = client(Duration::from_secs(args.timeout), connections)?;
    let mut ok = true;
    if args.warmup > 0 {
        let (warm, _) = drive(&client, &base, args.warmup, args.concurrency).await?;
        if warm.valid != args.warmup {
            eprintln!(
                "loadgen: warm-up: {} of {} valid: {:?}",
                warm.valid, args.warmup, warm.errors
            );
            ok = false;
        }
    }
    let (tally, elapsed) = drive(&client, &base, args.pairs, args.concurrency).await?;
    ok &= tally.valid == args.pairs && tally.error_count() == 0;
    let report = Report { args: &args, tally: &tally, elapsed };
    if args.json {
        println!("{}", report.json());
    } else {
        report.print();
    }
    if !ok {
        eprintln!("loadgen: FAILED: {} of {} pairs valid", tally.valid, args.pairs);
    }
    Ok(ok)
}

struct Report<'a> {
    args: &'a RunArgs,
    tally: &'a Tally,
    elapsed: Duration,
}

/// Milliseconds, from a histogram of microseconds.
fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

impl Report<'_> {
    fn pairs_per_second(&self) -> f64 {
        self.args.pairs as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    fn both(&self) -> Histogram<u64> {
        let mut both = self.tally.issue.clone();
        // Same settings on both sides, so adding cannot fail; if it did, issue alone is shown.
        let _ = both.add(&self.tally.validate);
        both
    }

    fn print(&self) {
        let (t, a) = (self.tally, self.args);
        println!(
            "{} pairs in {:.2} s at concurrency {}: {:.0} pairs/s ({:.0} requests/s)",
            a.pairs,
            self.elapsed.as_secs_f64(),
            a.concurrency,
            self.pairs_per_second(),
            2.0 * self.pairs_per_second()
        );
        println!("latency ms     p50      p99    p99.9      max");
        for (name, h) in [("issue", &t.issue), ("validate", &t.validate), ("all", &self.both())] {
            println!(
                "{name:<9} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                ms(h, 0.5),
                ms(h, 0.99),
                ms(h, 0.999),
                h.max() as f64 / 1000.0
            );
        }
        println!("valid {} of {}; errors {}", t.valid, a.pairs, t.error_count());
        for (kind, count) in &t.errors {
            println!("  {count} x {kind}");
        }
    }

    fn json(&self) -> serde_json::Value {
        let (t, a) = (self.tally, self.args);
        let latency = |h: &Histogram<u64>| {
            serde_json::json!({
                "p50_ms": ms(h, 0.5), "p99_ms": ms(h, 0.99), "p999_ms": ms(h, 0.999),
                "max_ms": h.max() as f64 / 1000.0,
            })
        };
        serde_json::json!({
            "pairs": a.pairs,
            "concurrency": a.concurrency,
            "seconds": self.elapsed.as_secs_f64(),
            "pairs_per_s": self.pairs_per_second(),
            "issue": latency(&t.issue),
            "validate": latency(&t.validate),
            "all": latency(&self.both()),
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
