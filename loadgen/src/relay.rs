//! `loadgen relay`: a TCP relay that times a service's calls to its database.
//!
//! Put between the token service and DynamoDB Local (`AWS_ENDPOINT_URL_DYNAMODB` pointing at the
//! relay), it forwards bytes both ways unchanged and, per connection, times each exchange: from
//! the first byte of a request to the last byte of its response (HTTP/1.1 without pipelining,
//! so a connection alternates request and response; the exchange ends when the next request
//! starts or the connection closes). It also counts the connections opened through it: in
//! steady state a client that reuses its connections opens none (with TLS, no connection also
//! means no handshake).
//!
//! Control by signal: SIGUSR1 starts a new measuring window (after a warm-up), SIGTERM or
//! SIGINT prints the current window's figures as one JSON object on stdout and exits.

use crate::{MAX_MICROS, latency_json};
use clap::Args;
use hdrhistogram::Histogram;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// Address to listen on, `IP:PORT`.
    #[arg(long)]
    listen: String,
    /// Address to forward to, `IP:PORT`.
    #[arg(long)]
    to: String,
}

/// Figures of the current window.
struct Window {
    started: Instant,
    connections: u64,
    exchanges: Histogram<u64>,
}

impl Window {
    fn new() -> Result<Self, String> {
        let exchanges =
            Histogram::new_with_bounds(1, MAX_MICROS, 3).map_err(|e| format!("histogram: {e}"))?;
        Ok(Self { started: Instant::now(), connections: 0, exchanges })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "seconds": self.started.elapsed().as_secs_f64(),
            "connections_opened": self.connections,
            "exchanges": self.exchanges.len(),
            "exchange_ms": latency_json(&self.exchanges),
        })
    }
}

type Shared = Arc<Mutex<Window>>;

pub(crate) async fn run(args: RelayArgs) -> Result<bool, String> {
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", args.listen))?;
    let window: Shared = Arc::new(Mutex::new(Window::new()?));
    let mut reset = signal(SignalKind::user_defined1()).map_err(|e| e.to_string())?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    eprintln!("loadgen relay: {} -> {}", args.listen, args.to);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (client, _) = accepted.map_err(|e| format!("accepting: {e}"))?;
                lock(&window)?.connections += 1;
                let (to, window) = (args.to.clone(), window.clone());
                tokio::spawn(async move {
                    if let Err(e) = relay(client, &to, &window).await {
                        eprintln!("loadgen relay: a connection ended with: {e}");
                    }
                });
            }
            _ = reset.recv() => *lock(&window)? = Window::new()?,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    println!("{}", lock(&window)?.json());
    Ok(true)
}

fn lock(window: &Shared) -> Result<std::sync::MutexGuard<'_, Window>, String> {
    window.lock().map_err(|_| "the relay's figures are poisoned".to_owned())
}

/// Forwards one connection both ways until either side closes, timing its exchanges.
async fn relay(mut client: TcpStream, to: &str, window: &Shared) -> Result<(), String> {
    let mut upstream = TcpStream::connect(to).await.map_err(|e| format!("connecting {to}: {e}"))?;
    client.set_nodelay(true).map_err(|e| e.to_string())?;
    upstream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut request_buf, mut response_buf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    // The exchange under way: when its request began, and its response's latest byte so far.
    let (mut began, mut answered): (Option<Instant>, Option<Instant>) = (None, None);
    let finish = |began: Option<Instant>, answered: Option<Instant>| -> Result<(), String> {
        if let (Some(began), Some(answered)) = (began, answered) {
            let micros = u64::try_from((answered - began).as_micros()).unwrap_or(u64::MAX);
            lock(window)?.exchanges.saturating_record(micros.clamp(1, MAX_MICROS));
        }
        Ok(())
    };
    loop {
        tokio::select! {
            read = client.read(&mut request_buf) => {
                let n = read.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                if answered.is_some() || began.is_none() {
                    // A new request: the previous exchange (if any) is complete.
                    finish(began, answered)?;
                    (began, answered) = (Some(Instant::now()), None);
                }
                upstream.write_all(&request_buf[..n]).await.map_err(|e| e.to_string())?;
            }
            read = upstream.read(&mut response_buf) => {
                let n = read.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                answered = Some(Instant::now());
                client.write_all(&response_buf[..n]).await.map_err(|e| e.to_string())?;
            }
        }
    }
    finish(began, answered)
}
