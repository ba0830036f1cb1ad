//! Open loop: pairs offered on a fixed schedule, latency corrected for coordinated omission.
//!
//! A closed-loop client that waits for each answer before sending the next request sends
//! nothing while the service stalls, so the stall shows up in one sample instead of in every
//! request that should have been sent meanwhile ("coordinated omission", Gil Tene). Here pair i
//! is due at `start + i / rate`; a pacer thread (plain `std::thread::sleep`, about 0.06 ms
//! late at most on Linux, where tokio's timer wheel would be 1 ms) hands each due time to the
//! runtime, and the pair's issue latency (and the pair's) is measured from that due time, as
//! wrk2 does. The validation is sent the moment the issue answers, so its latency counts from
//! its send. At most `concurrency` pairs are in flight; a due pair waiting for a free
//! connection is charged that wait.

use crate::{Budget, Tally, pair};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Offers pairs at `rate` per second until `budget` is spent; returns the merged tally, the
/// wall-clock time from the first due time to the last answer, and the pacer's worst lag.
pub(crate) async fn drive(
    client: &reqwest::Client,
    base: &str,
    budget: Budget,
    rate: f64,
    concurrency: u64,
) -> Result<(Tally, Duration, Duration), String> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!("--rate must be a positive number of pairs per second, not {rate}"));
    }
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let start = Instant::now() + Duration::from_millis(10);
    let pacer = std::thread::Builder::new()
        .name("loadgen-pacer".into())
        .spawn(move || pace(start, rate, budget, &due_tx))
        .map_err(|e| format!("starting the pacer thread: {e}"))?;

    let permits = Arc::new(Semaphore::new(usize::try_from(concurrency.max(1)).unwrap_or(1)));
    // At most `concurrency` tallies exist: a pair borrows one and gives it back.
    let tallies: Arc<Mutex<Vec<Tally>>> = Arc::new(Mutex::new(Vec::new()));
    let url = Arc::new(format!("{base}/tokens"));
    let mut pairs = JoinSet::new();
    while let Some(due) = due_rx.recv().await {
        let (client, permits, tallies, url) =
            (client.clone(), permits.clone(), tallies.clone(), url.clone());
        pairs.spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
            let borrowed = tallies.lock().map_err(|e| e.to_string())?.pop();
            let mut tally = match borrowed {
                Some(tally) => tally,
                None => Tally::new()?,
            };
            pair(&client, &url, due, &mut tally).await;
            tallies.lock().map_err(|e| e.to_string())?.push(tally);
            Ok::<_, String>(())
        });
        // Reap finished pairs as we go, so the set stays as small as the pairs in flight.
        while let Some(done) = pairs.try_join_next() {
            done.map_err(|e| format!("a pair failed: {e}"))??;
        }
    }
    while let Some(done) = pairs.join_next().await {
        done.map_err(|e| format!("a pair failed: {e}"))??;
    }
    let elapsed = start.elapsed();
    let late = pacer.join().map_err(|_| "the pacer thread panicked".to_owned())?;
    let mut total = Tally::new()?;
    let tallies = std::mem::take(&mut *tallies.lock().map_err(|e| e.to_string())?);
    for tally in tallies {
        total.merge(tally)?;
    }
    Ok((total, elapsed, late))
}

/// Sends each due time when it comes; returns how late it was at worst.
fn pace(
    start: Instant,
    rate: f64,
    budget: Budget,
    due_tx: &tokio::sync::mpsc::UnboundedSender<Instant>,
) -> Duration {
    let mut late = Duration::ZERO;
    for i in 0u64.. {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        let more = match budget {
            Budget::Pairs(pairs) => i < pairs,
            Budget::Time(limit) => due < start + limit,
        };
        if !more {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        late = late.max(Instant::now().saturating_duration_since(due));
        if due_tx.send(due).is_err() {
            break;
        }
    }
    late
}
