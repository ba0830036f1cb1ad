//! The local server's HTTP/1 connection loop, with limits `axum::serve` does not offer.
//!
//! - **Header read timeout**: a connection must deliver a request's complete header within
//!   [`ConnectionLimits::header_read_timeout`], or it is closed. hyper (1.6 and later) also
//!   starts this timer when a keep-alive connection goes idle after a response, so the same
//!   setting is the idle keep-alive timeout: a client that sends half a header, or nothing,
//!   holds a connection (and a file descriptor) for at most that long.
//! - **Write timeout**: the same setting bounds how long writing an answer may make no progress
//!   (`tokio-io-timeout`); then the connection is closed. A client that sends requests but
//!   never reads the answers (its receive window stays full) would otherwise hold its
//!   connection forever, and enough of them would hold every slot under the cap.
//! - **Connection cap**: at most [`ConnectionLimits::max_connections`] connections are served
//!   at once. At the cap the loop stops accepting (new connections wait in the kernel's
//!   backlog) and logs `connection limit reached` once, until a connection closes.
//! - **Graceful shutdown**: on the shutdown signal it stops accepting, lets requests in flight
//!   finish (idle connections are closed at once), and gives up after
//!   [`SHUTDOWN_GRACE`].
//!
//! Each request carries the peer's address as `ConnectInfo<SocketAddr>` ([`crate::request`]).

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt;

/// Default header read (and idle keep-alive) timeout, seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Default cap on concurrent connections: well below the usual 1024 open files per process.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// How long a graceful shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Limits on connections; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest wait for a complete request header, longest idle keep-alive, and longest a
    /// write to the client may make no progress.
    pub header_read_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; see the module documentation.
///
/// # Errors
/// Never at present: accept errors (such as running out of file descriptors) are logged and
/// retried after a pause.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    let mut capped = false;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                if capped {
                    tracing::info!(max = limits.max_connections, "accepting connections again");
                    capped = false;
                }
                slot
            }
            Err(_) => {
                if !capped {
                    tracing::warn!(
                        max = limits.max_connections,
                        "connection limit reached: new connections wait until one closes"
                    );
                    capped = true;
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.header_read_timeout));
        let service = app.clone().map_request(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection =
            graceful.watch(http.serve_connection(
                TokioIo::new(Box::pin(stream)),
                TowerToHyperService::new(service),
            ));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after the shutdown grace period");
    }
    Ok(())
}
