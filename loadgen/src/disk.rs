//! `loadgen disk`: the disk's own floor under a stream of synchronous commits.
//!
//! The embedded store makes each batch durable with one commit: it writes the pages the batch
//! dirtied, then `fdatasync`s, and the next batch waits for that. This times just the disk's part
//! of that, with no database: `--pages` 4 KiB writes into a preallocated scratch file, then
//! `fdatasync` (`File::sync_data`), at `--rate` commits per second on a fixed schedule, one at a
//! time. Two latencies per commit, microseconds in HDR histograms: the write + `fdatasync` itself,
//! and its end counted from when it was due (a slow `fdatasync` delays the ones behind it, as it
//! delays the store's next batch). Run at the open loop's measured fsyncs/s, the second is the
//! lowest commit latency any single-writer store on this disk could reach at that rate.

use crate::{MAX_MICROS, latency_json};
use clap::Args;
use hdrhistogram::Histogram;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Size of the scratch file, bytes (64 MiB): pages cycle through it, so each write overwrites
/// allocated blocks and `fdatasync` has no file-size metadata to write.
const SCRATCH_BYTES: u64 = 64 << 20;
/// One page, bytes (redb's and the kernel's page size here).
const PAGE: u64 = 4096;

#[derive(Debug, Args)]
pub(crate) struct DiskArgs {
    /// Directory on the disk to measure (the store's); a scratch file is made there and removed.
    #[arg(long)]
    dir: PathBuf,
    /// Commits per second, on a fixed schedule.
    #[arg(long)]
    rate: f64,
    /// Seconds to measure.
    #[arg(short = 'd', long, default_value_t = 8.0)]
    duration: f64,
    /// 4 KiB pages written before each `fdatasync`.
    #[arg(long, default_value_t = 4)]
    pages: u64,
    /// Print the JSON object on one line instead of indented.
    #[arg(long)]
    json: bool,
}

/// Runs the measurement; `Ok(true)` once it printed its figures.
///
/// # Errors
/// A bad `--rate`, or any I/O error on the scratch file (its path is named).
pub(crate) fn run(args: &DiskArgs) -> Result<bool, String> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(format!(
            "--rate must be a positive number of commits per second, not {}",
            args.rate
        ));
    }
    let path = args.dir.join(format!("loadgen-disk-{}.scratch", std::process::id()));
    let io = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io("creating", e))?;
    let measured = measure(&file, args).map_err(|e| io("writing", e));
    std::fs::remove_file(&path).map_err(|e| io("removing", e))?;
    let (service, from_due, commits, elapsed) = measured?;
    let figures = serde_json::json!({
        "rate": args.rate,
        "pages": args.pages,
        "commits": commits,
        "seconds": elapsed.as_secs_f64(),
        "commits_per_s": commits as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        "fdatasync": latency_json(&service),
        "from_due": latency_json(&from_due),
    });
    if args.json {
        println!("{figures}");
    } else {
        println!("{}", serde_json::to_string_pretty(&figures).unwrap_or_default());
    }
    Ok(true)
}

type Measured = (Histogram<u64>, Histogram<u64>, u64, Duration);

fn measure(file: &File, args: &DiskArgs) -> std::io::Result<Measured> {
    let page = vec![0x5a_u8; usize::try_from(PAGE).unwrap_or(4096)];
    for offset in (0..SCRATCH_BYTES).step_by(page.len()) {
        file.write_all_at(&page, offset)?;
    }
    file.sync_all()?;
    let histogram = || Histogram::new_with_bounds(1, MAX_MICROS, 3).map_err(std::io::Error::other);
    let (mut service, mut from_due) = (histogram()?, histogram()?);
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let total = Duration::from_secs_f64(args.duration.max(0.0));
    let (start, mut offset, mut commits) = (Instant::now(), 0, 0_u64);
    let mut due = start;
    // Ends on schedule, or at the duration's end when the disk cannot keep the rate.
    while due - start < total && start.elapsed() < total {
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let began = Instant::now();
        for _ in 0..args.pages {
            file.write_all_at(&page, offset)?;
            offset = (offset + PAGE) % SCRATCH_BYTES;
        }
        file.sync_data()?;
        let ended = Instant::now();
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        service.saturating_record(micros(ended - began));
        from_due.saturating_record(micros(ended - due));
        commits += 1;
        due += interval;
    }
    Ok((service, from_due, commits, start.elapsed()))
}
