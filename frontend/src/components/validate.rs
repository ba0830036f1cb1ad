//! The validate panel: paste a token, Validate, and see valid or invalid with the server's
//! message. Validating consumes the token, so the button cannot be pressed twice for one
//! request (see [`crate::request`]).

use crate::answer::{reason_code, verdict};
use crate::api;
use crate::api_base::ApiBase;
use crate::request::RequestState;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::ValidateResponse;

/// A validation answer and the token it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checked {
    token: String,
    answer: ValidateResponse,
}

/// Validates the token in `token`.
#[component]
pub fn ValidatePanel(
    /// Where the API is; `None` while `config.json` is being read (the button is disabled).
    api: Signal<Option<ApiBase>>,
    /// The text box, shared with the issue panel.
    token: RwSignal<String>,
) -> impl IntoView {
    let state = RwSignal::new(RequestState::<Checked>::Idle);
    let input_error = RwSignal::new(None::<&'static str>);
    let in_flight = move || state.with(RequestState::is_in_flight);

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let Some(base) = api.get_untracked() else {
            return;
        };
        // Tokens contain no whitespace; pasted ones often end with a newline.
        let candidate = token.with_untracked(|t| t.trim().to_owned());
        if candidate.is_empty() {
            return input_error.set(Some("Paste a token first."));
        }
        input_error.set(None);
        // Checked here as well as by `disabled`: see `crate::request`.
        if !state.try_update(RequestState::start).unwrap_or(false) {
            return;
        }
        spawn_local(async move {
            let outcome = api::validate(&base, &candidate)
                .await
                .map(|answer| Checked { token: candidate, answer });
            state.update(|s| {
                s.finish(outcome);
            });
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
                    disabled=move || in_flight() || api.with(Option::is_none)
                    aria-busy=move || in_flight().to_string()
                >
                    {move || if in_flight() { "Validating…" } else { "Validate" }}
                </button>
            </form>
            <div aria-live="polite" data-testid="validate-outcome">
                {move || state.with(|s| s.error().map(|e| view! {
                    <p class="error" role="alert" data-testid="validate-error">{e.to_string()}</p>
                }))}
                // A result is shown only beside the token it is about: a new or edited token
                // hides the previous verdict.
                {move || {
                    let current = token.with(|t| t.trim().to_owned());
                    state.with(|s| s.answer().filter(|c| c.token == current).map(|c| c.answer.clone()))
                }.map(|answer| view! {
                    <div
                        class="result"
                        class:valid=answer.is_valid
                        class:invalid=!answer.is_valid
                        data-testid="validate-result"
                        data-valid=answer.is_valid.to_string()
                        data-reason=reason_code(answer.reason)
                    >
                        <strong data-testid="validate-verdict">{verdict(&answer)}</strong>
                        <span data-testid="validate-message">{answer.message.clone()}</span>
                    </div>
                })}
            </div>
        </section>
    }
}
