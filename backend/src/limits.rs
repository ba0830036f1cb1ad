//! Per-client rate limits on the `/tokens` endpoints.
//!
//! A keyed GCRA limiter ([`governor`]): each client address may send `per_minute` requests in a
//! burst and then one every `60 / per_minute` seconds. Beyond that the answer is `429` with
//! `reason: rate_limited` and `Retry-After` (RFC 6585 section 4; RFC 9110 section 10.2.3) in
//! whole seconds, rounded up. IPv6 clients are counted per /64, the smallest block one host
//! is usually given, so a single host cannot step around its limit by changing addresses.
//!
//! The client address comes from [`crate::request`]; a request without one (an in-process
//! call) is not limited. `/health` and everything outside `/tokens` are never limited.
//!
//! On Lambda each execution environment counts on its own; the limits that hold across them
//! belong in front of it (API Gateway throttling, WAF rate rules).

use crate::http::ApiError;
use crate::metrics::Metrics;
use crate::request;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Forget idle clients after this many checks (their state is only needed while they are near
/// their limit), so the table stays as small as the set of recent clients.
const RETAIN_EVERY: u64 = 4096;

/// A per-client limit of requests per minute.
pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    per_minute: NonZeroU32,
    checks: AtomicU64,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").field("per_minute", &self.per_minute).finish()
    }
}

impl RateLimit {
    /// `per_minute` requests per minute per client, counting refusals in `metrics`.
    pub fn new(per_minute: NonZeroU32, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute)),
            per_minute,
            checks: AtomicU64::new(0),
            metrics,
        }
    }

    /// `Ok` if `client` may send a request now, else how many whole seconds to wait (at least 1).
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&bucket(client)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait.as_secs_f64().ceil() as u64).max(1)
        })
    }
}

/// The key a client is counted under: the address, or its /64 for IPv6.
fn bucket(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => client,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

/// Whether requests to `path` are rate limited: `/tokens` and everything under it.
pub fn is_limited(path: &str) -> bool {
    path == "/tokens" || path.starts_with("/tokens/")
}

/// The middleware: `429` for a client over its limit on a limited path.
pub async fn limit(State(limit): State<Arc<RateLimit>>, request: Request, next: Next) -> Response {
    let client = request::current().and_then(|c| c.client);
    if let Some(client) = client.filter(|_| is_limited(request.uri().path()))
        && let Err(retry_after) = limit.check(client)
    {
        if let Some(metrics) = &limit.metrics {
            metrics.rate_limited();
        }
        tracing::info!(%client, retry_after, "rate limited");
        return ApiError::RateLimited { retry_after }.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_and_then_waits_while_others_do_not() {
        let limit = RateLimit::new(NonZeroU32::new(3).unwrap(), None);
        let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(limit.check(a), Ok(()));
        }
        // One request per 20 s after the burst.
        let wait = limit.check(a).unwrap_err();
        assert!((19..=20).contains(&wait), "{wait}");
        assert_eq!(limit.check(b), Ok(()));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let limit = RateLimit::new(NonZeroU32::new(1).unwrap(), None);
        assert_eq!(limit.check("2001:db8:1:2::1".parse().unwrap()), Ok(()));
        assert!(limit.check("2001:db8:1:2:ffff::9".parse().unwrap()).is_err());
        assert_eq!(limit.check("2001:db8:1:3::1".parse().unwrap()), Ok(()));
    }

    #[test]
    fn only_the_tokens_endpoints_are_limited() {
        assert!(is_limited("/tokens"));
        assert!(is_limited("/tokens/status"));
        assert!(!is_limited("/tokensx"));
        assert!(!is_limited("/health"));
        assert!(!is_limited("/metrics"));
    }
}
