//! The audit trail: one JSON line per state change and per refusal, and the [`Telemetry`]
//! observer that writes it and counts [`crate::metrics`].
//!
//! A line is a JSON object with `"log": "audit"` and:
//!
//! | field | value |
//! |---|---|
//! | `event` | `issued`, `superseded`, `consumed`, `replayed`, `refused`, `reuse_detected` or `revoked` |
//! | `uuid` | the token's id; `null` when its signature or shape failed (nothing in it is trusted) |
//! | `purpose` | the token's `purpose` claim, if any (never its `sub`, which may name a person) |
//! | `reason` | the refusal's `reason` (as in the API), else `null` |
//! | `usedAt` | with `replayed`, `reuse_detected` and `already_used`: when the token was first used, RFC 3339 |
//! | `expiresAt` | with `issued`: the token's `exp`, RFC 3339 |
//! | `supersededBy` | with `superseded`: the `uuid` of the newer token whose issue revoked it |
//! | `attemptId` | the validation's `Idempotency-Key` (or generated id), else `null` |
//! | `requestId` | the request's `X-Request-Id` ([`crate::request`]) |
//! | `client` | the client's address, if known |
//! | `time` | when, RFC 3339 UTC, by the service's clock |
//!
//! Never the token, its signature, or a key: only what the service itself chose (uuid, times,
//! ids) or validated (attempt and request ids are short `A-Za-z0-9-_.:` strings).
//!
//! `reuse_detected` is a used token presented again by another attempt: for a one-time token,
//! the sign that someone else has a copy of it. Its `usedAt` is the original use. The attempt
//! that used it, retrying after its replay window, is refused `already_used` but is no reuse:
//! a `refused` line.
//! `superseded` is an unused token revoked because a newer token of its purpose and subject was
//! issued with `supersede=true`: one line per token so revoked, after the newer token's `issued`
//! line, with the revoked token's `uuid` (and the shared `purpose`) and the newer token's in
//! `supersededBy`. An issue with `supersede=true` that found nothing to revoke writes no such
//! line. `revoked` is a token revoked by `POST /tokens/revoke`. Both count in the
//! `tokens_revoked` metric.

use crate::metrics::Metrics;
use crate::observe::{Event, Observer, reason};
use crate::request;
use crate::tokens::ValidateError;
use serde::Serialize;
use std::io::Write;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where JSON lines (audit, EMF) are written. Each line is written whole, with one `write` of
/// a locked stream, so lines never interleave. Write errors (a closed pipe) are ignored: a
/// lost log line must not fail a request.
#[derive(Clone, Default)]
pub enum LogSink {
    /// Standard output (the Lambda: CloudWatch Logs reads it).
    Stdout,
    /// Standard error (the local server, beside its other log lines).
    #[default]
    Stderr,
    /// Kept in memory (tests).
    Memory(Arc<Mutex<Vec<String>>>),
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Stdout => "Stdout",
            Self::Stderr => "Stderr",
            Self::Memory(_) => "Memory",
        })
    }
}

impl LogSink {
    /// A fresh in-memory sink.
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    /// The lines written so far (empty unless in memory).
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Memory(lines) => lines.lock().map(|l| l.clone()).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Writes `line` and a newline.
    pub fn write_line(&self, line: &str) {
        let whole = format!("{line}\n");
        match self {
            Self::Stdout => drop(std::io::stdout().lock().write_all(whole.as_bytes())),
            Self::Stderr => drop(std::io::stderr().lock().write_all(whole.as_bytes())),
            Self::Memory(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line.to_owned());
                }
            }
        }
    }
}

/// One audit line; see the module documentation.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditLine<'a> {
    log: &'static str,
    event: &'static str,
    uuid: Option<String>,
    purpose: Option<&'a str>,
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    used_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    superseded_by: Option<String>,
    attempt_id: Option<&'a str>,
    request_id: Option<String>,
    client: Option<String>,
    time: String,
}

/// Epoch seconds as RFC 3339 UTC; the number itself if out of range.
fn rfc3339(epoch_seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(epoch_seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| epoch_seconds.to_string())
}

/// The observer of a running service: writes the audit trail to `audit` and counts `metrics`.
#[derive(Debug)]
pub struct Telemetry {
    audit: LogSink,
    metrics: Arc<Metrics>,
}

impl Telemetry {
    /// Audit lines to `audit`, counts to `metrics`.
    pub fn new(audit: LogSink, metrics: Arc<Metrics>) -> Self {
        Self { audit, metrics }
    }

    fn write(&self, line: AuditLine<'_>) {
        if let Ok(text) = serde_json::to_string(&line) {
            self.audit.write_line(&text);
        }
    }
}

impl Observer for Telemetry {
    fn observe(&self, event: &Event<'_>) {
        let context = request::current();
        let line = |event, at| AuditLine {
            log: "audit",
            event,
            uuid: None,
            purpose: None,
            reason: None,
            used_at: None,
            expires_at: None,
            superseded_by: None,
            attempt_id: None,
            request_id: context.as_ref().map(|c| c.id.clone()),
            client: context.as_ref().and_then(|c| c.client).map(|ip| ip.to_string()),
            time: rfc3339(at),
        };
        match *event {
            Event::Issued { claims, at } => {
                self.metrics.issued();
                self.write(AuditLine {
                    uuid: Some(claims.uuid.to_string()),
                    purpose: claims.purpose.as_deref(),
                    expires_at: Some(rfc3339(claims.exp)),
                    ..line("issued", at)
                });
            }
            Event::Superseded { uuid, by, at } => {
                self.metrics.revoked();
                self.write(AuditLine {
                    uuid: Some(uuid.to_string()),
                    purpose: by.purpose.as_deref(),
                    superseded_by: Some(by.uuid.to_string()),
                    ..line("superseded", at)
                });
            }
            Event::Revoked { claims, at } => {
                self.metrics.revoked();
                self.write(AuditLine {
                    uuid: Some(claims.uuid.to_string()),
                    purpose: claims.purpose.as_deref(),
                    ..line("revoked", at)
                });
            }
            Event::Used { claims, attempt, replayed, at } => {
                let (name, used_at) = match replayed {
                    None => ("consumed", None),
                    Some(used_at) => ("replayed", Some(rfc3339(used_at))),
                };
                self.metrics.validation(if replayed.is_some() { "replayed" } else { "valid" });
                self.write(AuditLine {
                    uuid: Some(claims.uuid.to_string()),
                    purpose: claims.purpose.as_deref(),
                    attempt_id: Some(attempt.as_str()),
                    used_at,
                    ..line(name, at)
                });
            }
            Event::Refused { claims, attempt, error, at } => {
                let reason = reason(error);
                self.metrics.validation(reason.as_str());
                let (name, used_at) = match error {
                    ValidateError::AlreadyUsed { used_at, own_attempt: false } => {
                        self.metrics.reuse_detected();
                        ("reuse_detected", Some(rfc3339(*used_at)))
                    }
                    // The same attempt, after its replay window: a late retry, not a reuse.
                    ValidateError::AlreadyUsed { used_at, own_attempt: true } => {
                        ("refused", Some(rfc3339(*used_at)))
                    }
                    _ => ("refused", None),
                };
                self.write(AuditLine {
                    uuid: claims.map(|c| c.uuid.to_string()),
                    purpose: claims.and_then(|c| c.purpose.as_deref()),
                    reason: Some(reason.as_str()),
                    attempt_id: Some(attempt.as_str()),
                    used_at,
                    ..line(name, at)
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AttemptId;
    use crate::tokens::Claims;
    use serde_json::json;

    fn claims() -> Claims {
        Claims {
            uuid: uuid::Uuid::nil(),
            iat: 1_800_000_000,
            exp: 1_800_003_600,
            nbf: None,
            sub: Some("user-42".into()),
            purpose: Some("password-reset".into()),
        }
    }

    /// Observes `event` on fresh telemetry; the one audit line it wrote, and the metrics.
    fn observed(event: &Event) -> (serde_json::Value, Arc<Metrics>) {
        let (sink, metrics) = (LogSink::memory(), Arc::new(Metrics::new(None)));
        Telemetry::new(sink.clone(), metrics.clone()).observe(event);
        let lines = sink.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        (serde_json::from_str(&lines[0]).unwrap(), metrics)
    }

    #[test]
    fn a_reuse_is_its_own_event_with_the_original_use_time() {
        let claims = claims();
        let attempt = AttemptId::generate();
        let error = ValidateError::AlreadyUsed { used_at: 1_800_000_100, own_attempt: false };
        let (line, _) = observed(&Event::Refused {
            claims: Some(&claims),
            attempt: &attempt,
            error: &error,
            at: 1_800_000_200,
        });
        assert_eq!(
            line,
            json!({
                "log": "audit",
                "event": "reuse_detected",
                "uuid": "00000000-0000-0000-0000-000000000000",
                "purpose": "password-reset",
                "reason": "already_used",
                "usedAt": "2027-01-15T08:01:40Z",
                "attemptId": attempt.as_str(),
                "requestId": null,
                "client": null,
                "time": "2027-01-15T08:03:20Z",
            })
        );
    }

    #[test]
    fn the_attempt_that_used_a_token_retrying_after_its_replay_window_is_no_reuse() {
        let claims = claims();
        let attempt = AttemptId::generate();
        let error = ValidateError::AlreadyUsed { used_at: 1_800_000_100, own_attempt: true };
        let (line, metrics) = observed(&Event::Refused {
            claims: Some(&claims),
            attempt: &attempt,
            error: &error,
            at: 1_800_001_000,
        });
        assert_eq!(line["event"], "refused");
        assert_eq!(line["reason"], "already_used");
        assert_eq!(line["usedAt"], "2027-01-15T08:01:40Z");
        let text = metrics.encode();
        assert!(text.contains("reuse_detected_total 0\n"), "{text}");
        assert!(text.contains("validations_total{result=\"already_used\"} 1\n"), "{text}");
    }

    #[test]
    fn a_superseded_token_is_named_by_its_own_uuid_and_counted_as_revoked() {
        let newer = claims();
        let revoked = uuid::Uuid::from_u128(7);
        let (line, metrics) =
            observed(&Event::Superseded { uuid: revoked, by: &newer, at: 1_800_000_000 });
        assert_eq!(
            line,
            json!({
                "log": "audit",
                "event": "superseded",
                "uuid": "00000000-0000-0000-0000-000000000007",
                "purpose": "password-reset",
                "reason": null,
                "supersededBy": "00000000-0000-0000-0000-000000000000",
                "attemptId": null,
                "requestId": null,
                "client": null,
                "time": "2027-01-15T08:00:00Z",
            })
        );
        assert!(metrics.encode().lines().any(|l| l == "tokens_revoked_total 1"));
    }
}
