//! The claims view: what the token in the validate box says about itself (id, issue and expiry
//! times, subject, purpose), decoded by [`crate::claims`] and clearly marked as not verified.

use crate::browser;
use crate::claims::decode_claims;
use leptos::prelude::*;

/// Shows the claims of the token in `token`, as the user types or pastes it.
#[component]
pub fn ClaimsView(
    /// The validate panel's token box.
    token: RwSignal<String>,
) -> impl IntoView {
    move || {
        let decoded = token.with(|t| (!t.trim().is_empty()).then(|| decode_claims(t)));
        decoded.map(|decoded| match decoded {
            Ok(claims) => {
                let rows = claims.rows(browser::local_time).into_iter().map(|row| {
                    view! {
                        <div>
                            <dt>{row.label} " " <code>{row.name}</code></dt>
                            <dd data-testid=format!("claim-{}", row.name) data-raw=row.raw>{row.shown}</dd>
                        </div>
                    }
                });
                view! {
                    <div class="claims" data-testid="claims">
                        <p class="claims-title">
                            "Claims "
                            <span class="badge" data-testid="claims-badge">"Decoded, not verified"</span>
                        </p>
                        <p class="hint">
                            "Read from the token as it is: anyone can write these. Only the server checks the \
                             signature (Validate, Check status)."
                        </p>
                        <dl class="facts">{rows.collect_view()}</dl>
                    </div>
                }
                .into_any()
            }
            Err(why) => view! {
                <p class="hint" data-testid="claims-error">"Claims not readable: " {why}</p>
            }
            .into_any(),
        })
    }
}
