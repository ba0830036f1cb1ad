//! The issue panel: an optional lifetime, the Issue button, then the token with its expiration
//! in local time, a live countdown and a Copy button.

use crate::api;
use crate::api_base::ApiBase;
use crate::browser;
use crate::components::copy_button::CopyButton;
use crate::request::RequestState;
use crate::timing::{format_remaining, parse_lifetime, parse_rfc3339, remaining_secs};
use leptos::ev::SubmitEvent;
use leptos::html::Textarea;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::IssueResponse;
use std::time::Duration;

/// How often the countdown is recomputed. Under a second, so it never skips a second visibly.
const TICK: Duration = Duration::from_millis(250);

/// Issues tokens. A new token is also written into `validate_box`.
#[component]
pub fn IssuePanel(
    /// Where the API is; `None` while `config.json` is being read (the button is disabled).
    api: Signal<Option<ApiBase>>,
    /// The validate panel's text box.
    validate_box: RwSignal<String>,
) -> impl IntoView {
    let lifetime = RwSignal::new(String::new());
    let input_error = RwSignal::new(None::<String>);
    let state = RwSignal::new(RequestState::<IssueResponse>::Idle);
    let in_flight = move || state.with(RequestState::is_in_flight);

    let now = RwSignal::new(browser::now_ms());
    if let Ok(ticker) = set_interval_with_handle(move || now.set(browser::now_ms()), TICK) {
        on_cleanup(move || ticker.clear());
    }

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let Some(base) = api.get_untracked() else {
            return;
        };
        let ttl = match parse_lifetime(&lifetime.get_untracked()) {
            Ok(ttl) => ttl,
            Err(e) => return input_error.set(Some(e)),
        };
        input_error.set(None);
        // Checked here, synchronously, as well as by `disabled`: a second click that arrives
        // before the DOM update must not send a second request.
        if !state.try_update(RequestState::start).unwrap_or(false) {
            return;
        }
        spawn_local(async move {
            let outcome = api::issue(&base, ttl).await;
            if let Ok(issued) = &outcome {
                validate_box.set(issued.token.clone());
            }
            state.update(|s| {
                s.finish(outcome);
            });
        });
    };

    view! {
        <section class="panel" aria-labelledby="issue-heading">
            <h2 id="issue-heading">"Issue a token"</h2>
            <form on:submit=on_submit novalidate>
                <label for="lifetime">"Lifetime in seconds " <span class="hint">"(optional)"</span></label>
                <div class="row">
                    <input
                        id="lifetime"
                        data-testid="lifetime"
                        // Text, not `number`: a number input reports "" for "ten", which would
                        // silently mean "the default lifetime".
                        type="text"
                        inputmode="numeric"
                        autocomplete="off"
                        placeholder="server default"
                        aria-describedby="lifetime-error"
                        prop:value=move || lifetime.get()
                        on:input=move |ev| lifetime.set(event_target_value(&ev))
                    />
                    <button
                        type="submit"
                        id="issue-button"
                        data-testid="issue-button"
                        disabled=move || in_flight() || api.with(Option::is_none)
                        aria-busy=move || in_flight().to_string()
                    >
                        {move || if in_flight() { "Issuing…" } else { "Issue token" }}
                    </button>
                </div>
                <p id="lifetime-error" class="error" role="alert" data-testid="lifetime-error">{move || input_error.get()}</p>
            </form>
            <div aria-live="polite" data-testid="issue-outcome">
                {move || state.with(|s| s.error().map(|e| view! {
                    <p class="error" role="alert" data-testid="issue-error">{e.to_string()}</p>
                }))}
                {move || state.with(|s| s.answer().cloned()).map(|issued| view! { <Issued issued=issued now=now /> })}
            </div>
        </section>
    }
}

/// One issued token: the token, Copy, its expiration in local time and the countdown.
#[component]
fn Issued(
    /// The server's answer.
    issued: IssueResponse,
    /// Now, in epoch milliseconds, updated every [`TICK`].
    now: RwSignal<f64>,
) -> impl IntoView {
    let token_ref = NodeRef::<Textarea>::new();
    let expires_at = parse_rfc3339(&issued.expiration);
    let local = expires_at.map_or_else(|| issued.expiration.clone(), browser::local_time);
    let countdown = move || match expires_at {
        Some(at) => format_remaining(remaining_secs(at, now.get())),
        None => "unknown".to_owned(),
    };
    let expired = move || expires_at.is_some_and(|at| remaining_secs(at, now.get()) == 0);
    let token = issued.token.clone();

    view! {
        <div class="issued" data-testid="issued">
            <label for="issued-token">"Your token"</label>
            <textarea
                id="issued-token"
                data-testid="issued-token"
                class="token"
                readonly
                rows="4"
                spellcheck="false"
                node_ref=token_ref
                prop:value=issued.token.clone()
            ></textarea>
            <CopyButton text=token target=token_ref />
            <dl class="facts">
                <div>
                    <dt>"Expires"</dt>
                    <dd>
                        <time id="expiration" data-testid="expiration" datetime=issued.expiration.clone()>{local}</time>
                    </dd>
                </div>
                <div>
                    <dt>"Time left"</dt>
                    <dd id="countdown" data-testid="countdown" role="timer" class="countdown" class:expired=expired>
                        {countdown}
                    </dd>
                </div>
            </dl>
        </div>
    }
}
