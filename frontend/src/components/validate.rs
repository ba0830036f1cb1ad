//! The validate panel: paste a token, Validate, and see valid or invalid with the server's
//! message. Validating consumes the token, so one click sends one `POST /tokens`, retried with
//! the same `Idempotency-Key` when the answer is lost; the rules live in [`crate::validation`].

use crate::answer::verdict;
use crate::api;
use crate::api_base::ApiBase;
use crate::browser;
use crate::timing::parse_rfc3339;
use crate::validation::{Next, Phase, RETRY, Validation};
use gloo_timers::future::TimeoutFuture;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::{Reason, ValidateResponse};

/// Validates the token in `token`.
#[component]
pub fn ValidatePanel(
    /// Where the API is; `None` while `config.json` is being read (the button is disabled).
    api: Signal<Option<ApiBase>>,
    /// The text box, shared with the issue panel.
    token: RwSignal<String>,
) -> impl IntoView {
    let state = RwSignal::new(Validation::default());
    let input_error = RwSignal::new(None::<&'static str>);
    let busy = move || state.with(Validation::is_busy);
    // Tokens contain no whitespace; pasted ones often end with a newline.
    let current = move || token.with(|t| t.trim().to_owned());
    // Results and failures are shown only beside the token they are about: a new or edited
    // token hides them (and turns Retry back into Validate, with a fresh key).
    let mine = move || {
        let current = current();
        state.with(|s| s.attempt().filter(|a| a.token == current).map(|a| a.phase.clone()))
    };

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let Some(base) = api.get_untracked() else {
            return;
        };
        let candidate = token.with_untracked(|t| t.trim().to_owned());
        if candidate.is_empty() {
            return input_error.set(Some("Paste a token first."));
        }
        input_error.set(None);
        // Checked here as well as by `disabled`: a second click that arrives before the DOM
        // update must not send a second request.
        let Some((sent, key)) =
            state.try_update(|s| s.start(candidate, browser::attempt_key)).flatten()
        else {
            return;
        };
        spawn_local(async move {
            loop {
                let outcome = api::validate(&base, &sent, &key).await;
                // `None` once the panel is gone: nobody to retry for.
                let Some(Next::Resend { wait_ms }) =
                    state.try_update(|s| s.record(outcome, &RETRY))
                else {
                    break;
                };
                TimeoutFuture::new(wait_ms).await;
                if !state.try_update(Validation::resend).unwrap_or(false) {
                    break;
                }
            }
        });
    };

    view! {
        <section class="panel" aria-labelledby="validate-heading">
            <h2 id="validate-heading">"Validate a token"</h2>
            <form on:submit=on_submit novalidate>
                <label for="validate-token">"Token"</label>
                <textarea
                    id="validate-token"
                    data-testid="validate-token"
                    class="token"
                    rows="4"
                    spellcheck="false"
                    autocomplete="off"
                    placeholder="Paste a token here"
                    aria-describedby="validate-input-error"
                    prop:value=move || token.get()
                    on:input=move |ev| token.set(event_target_value(&ev))
                ></textarea>
                <p id="validate-input-error" class="error" role="alert" data-testid="validate-input-error">{move || input_error.get()}</p>
                <button
                    type="submit"
                    id="validate-button"
                    data-testid="validate-button"
                    disabled=move || busy() || api.with(Option::is_none)
                    aria-busy=move || busy().to_string()
                    data-retry=move || state.with(|s| s.offers_retry(&current())).to_string()
                >
                    {move || {
                        if busy() {
                            "Validating…"
                        } else if state.with(|s| s.offers_retry(&current())) {
                            "Retry"
                        } else {
                            "Validate"
                        }
                    }}
                </button>
            </form>
            <div aria-live="polite" data-testid="validate-outcome">
                {move || state.with(|s| s.progress(&RETRY)).map(|line| view! {
                    <p class="hint" role="status" data-testid="validate-progress">{line}</p>
                })}
                {move || match mine() {
                    Some(Phase::Done(Err(e))) => view! {
                        <p
                            class="error"
                            role="alert"
                            data-testid="validate-error"
                            data-outcome=if e.outcome_unknown() { "unknown" } else { "refused" }
                        >
                            {state.with(Validation::failure)}
                        </p>
                    }
                    .into_any(),
                    Some(Phase::Done(Ok(answer))) => view! { <Verdict answer=answer /> }.into_any(),
                    _ => ().into_any(),
                }}
            </div>
        </section>
    }
}

/// A definite answer: the verdict, the server's message, when the token was used (with
/// `already_used` and with a replayed success) and a note when a retry confirmed the validation.
#[component]
fn Verdict(
    /// The server's answer.
    answer: ValidateResponse,
) -> impl IntoView {
    let used_at = answer.used_at.clone().map(|iso| {
        let local = parse_rfc3339(&iso).map_or_else(|| iso.clone(), browser::local_time);
        view! {
            <span class="used-at">"Used at " <time data-testid="used-at" datetime=iso>{local}</time></span>
        }
    });
    let note = answer.replayed.then(|| view! {
        <span class="note" data-testid="validate-note">
            "Confirmed after a retry: the first answer was lost on the way, and this is the same validation."
        </span>
    });
    view! {
        <div
            class="result"
            class:valid=answer.is_valid
            class:invalid=!answer.is_valid
            data-testid="validate-result"
            data-valid=answer.is_valid.to_string()
            data-reason=answer.reason.map_or("", Reason::as_str)
            data-replayed=answer.replayed.to_string()
        >
            <strong data-testid="validate-verdict">{verdict(&answer)}</strong>
            <span data-testid="validate-message">{answer.message.clone()}</span>
            {used_at}
            {note}
        </div>
    }
}
