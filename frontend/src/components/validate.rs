//! The validate panel: paste a token (its claims are shown, decoded and marked as not
//! verified), optionally name the purpose and subject it is accepted for, then Validate, Check
//! status or Revoke.
//!
//! Validating consumes the token, so one click sends one `POST /tokens`, retried with the same
//! `Idempotency-Key` when the answer is lost; the rules live in [`crate::validation`]. Check
//! status changes nothing and Revoke revokes an unused token ([`crate::status`]). One request
//! at a time: every button is disabled while any of them is in flight.

use crate::answer::{not_consumed_note, verdict};
use crate::api;
use crate::api_base::ApiBase;
use crate::browser;
use crate::components::claims::ClaimsView;
use crate::components::field::TextField;
use crate::form::{FormErrors, read_validate_form};
use crate::issuer_key::IssuerKey;
use crate::status::{Action, Lookup, explanation, headline, state_name, times};
use crate::timing::parse_rfc3339;
use crate::validation::{Next, Phase, RETRY, Validation};
use gloo_timers::future::TimeoutFuture;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::{Reason, StatusResponse, ValidateResponse};

/// The validate form's fields. The issue panel fills them with each new token and the purpose
/// and subject it was issued for.
#[derive(Debug, Clone, Copy)]
pub struct ValidateFields {
    /// The token box.
    pub token: RwSignal<String>,
    /// The purpose the token is validated for (blank: none).
    pub purpose: RwSignal<String>,
    /// The subject the token is validated for (blank: none).
    pub subject: RwSignal<String>,
}

impl ValidateFields {
    /// Empty fields.
    pub fn new() -> Self {
        Self {
            token: RwSignal::new(String::new()),
            purpose: RwSignal::new(String::new()),
            subject: RwSignal::new(String::new()),
        }
    }
}

impl Default for ValidateFields {
    fn default() -> Self {
        Self::new()
    }
}

/// Validates, checks or revokes the token in `fields`.
#[component]
pub fn ValidatePanel(
    /// Where the API is; `None` while `config.json` is being read (the buttons are disabled).
    api: Signal<Option<ApiBase>>,
    /// The form, shared with the issue panel.
    fields: ValidateFields,
    /// The issuer key, which revoking needs when the service wants one.
    issuer_key: RwSignal<IssuerKey>,
) -> impl IntoView {
    let ValidateFields { token, purpose, subject } = fields;
    let state = RwSignal::new(Validation::default());
    let lookup = RwSignal::new(Lookup::default());
    let errors = RwSignal::new(FormErrors::default());
    let validating = move || state.with(Validation::is_busy);
    let looking = move || lookup.with(Lookup::in_flight);
    let busy = move || validating() || looking().is_some();
    let disabled = move || busy() || api.with(Option::is_none);
    // What Validate would send now; `None` while a field is out of range.
    let current = move || {
        token.with(|t| purpose.with(|p| subject.with(|s| read_validate_form(t, p, s).ok())))
    };
    let current_token = move || token.with(|t| t.trim().to_owned());
    // Results and failures are shown only beside the request they are about: a new or edited
    // token, purpose or subject hides them (and turns Retry back into Validate, with a fresh key).
    let mine = move || {
        let current = current()?;
        state.with(|s| s.attempt().filter(|a| a.request == current).map(|a| a.phase.clone()))
    };
    let offers_retry = move || current().is_some_and(|c| state.with(|s| s.offers_retry(&c)));

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let Some(base) = api.get_untracked() else {
            return;
        };
        let request = match read_validate_form(
            &token.read_untracked(),
            &purpose.read_untracked(),
            &subject.read_untracked(),
        ) {
            Ok(request) => request,
            Err(e) => return errors.set(e),
        };
        errors.set(FormErrors::default());
        // Checked here as well as by `disabled`: a second click that arrives before the DOM
        // update must not send a second request.
        if lookup.with_untracked(Lookup::is_in_flight) {
            return;
        }
        let Some((sent, key)) =
            state.try_update(|s| s.start(request, browser::attempt_key)).flatten()
        else {
            return;
        };
        // A status shown now would be out of date once this validation answers.
        lookup.update(|l| {
            l.clear();
        });
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

    let look = move |action: Action| {
        let Some(base) = api.get_untracked() else {
            return;
        };
        let candidate = token.with_untracked(|t| t.trim().to_owned());
        if candidate.is_empty() {
            return errors.update(|e| e.token = Some("Paste a token first.".to_owned()));
        }
        errors.update(|e| e.token = None);
        // As for Validate: checked here too, so that a quick second click sends nothing.
        if state.with_untracked(Validation::is_busy)
            || !lookup.try_update(|l| l.start(candidate.clone(), action)).unwrap_or(false)
        {
            return;
        }
        let authorization = issuer_key.with_untracked(IssuerKey::authorization);
        spawn_local(async move {
            let outcome = match action {
                Action::Check => api::status(&base, &candidate).await,
                Action::Revoke => {
                    let outcome = api::revoke(&base, &candidate, authorization.as_deref()).await;
                    issuer_key.try_update(|k| k.record(outcome.as_ref().err()));
                    outcome
                }
            };
            lookup.try_update(|l| l.finish(outcome));
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
                <p id="validate-input-error" class="error" role="alert" data-testid="validate-input-error">{move || errors.with(|e| e.token.clone())}</p>
                <ClaimsView token=token />
                <div class="fields">
                    <TextField
                        id="validate-purpose"
                        label="Purpose"
                        note="(if issued with one)"
                        value=purpose
                        error=Signal::derive(move || errors.with(|e| e.purpose.clone()))
                    />
                    <TextField
                        id="validate-subject"
                        label="Subject"
                        note="(if issued with one)"
                        value=subject
                        error=Signal::derive(move || errors.with(|e| e.subject.clone()))
                    />
                </div>
                <div class="row actions">
                    <button
                        type="submit"
                        id="validate-button"
                        data-testid="validate-button"
                        disabled=disabled
                        aria-busy=move || validating().to_string()
                        data-retry=move || offers_retry().to_string()
                    >
                        {move || {
                            if validating() {
                                "Validating…"
                            } else if offers_retry() {
                                "Retry"
                            } else {
                                "Validate"
                            }
                        }}
                    </button>
                    <button
                        type="button"
                        id="status-button"
                        data-testid="status-button"
                        class="secondary"
                        disabled=disabled
                        aria-busy=move || (looking() == Some(Action::Check)).to_string()
                        on:click=move |_| look(Action::Check)
                    >
                        {move || if looking() == Some(Action::Check) { "Checking…" } else { "Check status" }}
                    </button>
                    <button
                        type="button"
                        id="revoke-button"
                        data-testid="revoke-button"
                        class="secondary danger"
                        disabled=disabled
                        aria-busy=move || (looking() == Some(Action::Revoke)).to_string()
                        on:click=move |_| look(Action::Revoke)
                    >
                        {move || if looking() == Some(Action::Revoke) { "Revoking…" } else { "Revoke" }}
                    </button>
                </div>
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
            <div aria-live="polite" data-testid="status-outcome">
                {move || lookup.with(|l| l.shown_for(&current_token())).map(|(action, outcome)| match outcome {
                    Ok(status) => view! { <Status action=action status=status /> }.into_any(),
                    Err(e) => view! {
                        <p class="error" role="alert" data-testid="status-error" data-action=action.as_str()>
                            {e.to_string()}
                        </p>
                    }
                    .into_any(),
                })}
            </div>
        </section>
    }
}

/// A definite answer: the verdict, the server's message, when the token was used (with
/// `already_used` and with a replayed success) and a note when a retry confirmed the validation
/// or when the token was refused without being used.
#[component]
fn Verdict(
    /// The server's answer.
    answer: ValidateResponse,
) -> impl IntoView {
    let used_at = answer.used_at.clone().map(|iso| {
        view! { <span class="used-at">"Used at " <LocalTime iso=iso testid="used-at" /></span> }
    });
    let note = if answer.replayed {
        Some(
            "Confirmed after a retry: the first answer was lost on the way, and this is the same validation.",
        )
    } else {
        not_consumed_note(&answer)
    };
    let note =
        note.map(|note| view! { <span class="note" data-testid="validate-note">{note}</span> });
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

/// A Check status or Revoke answer: the headline, what it means, the times and the purpose.
#[component]
fn Status(
    /// Which button asked.
    action: Action,
    /// The server's answer.
    status: StatusResponse,
) -> impl IntoView {
    let facts = times(&status)
        .into_iter()
        .map(|(label, testid, iso)| {
            view! {
                <div>
                    <dt>{label}</dt>
                    <dd><LocalTime iso=iso.to_owned() testid=testid /></dd>
                </div>
            }
        })
        .collect_view();
    let purpose = status.purpose.clone().map(|purpose| {
        view! {
            <div>
                <dt>"Purpose"</dt>
                <dd data-testid="status-purpose">{purpose}</dd>
            </div>
        }
    });
    view! {
        <div
            class="result status"
            data-testid="status-result"
            data-action=action.as_str()
            data-state=state_name(status.state)
        >
            <strong data-testid="status-headline">{headline(action, &status)}</strong>
            <span data-testid="status-explanation">{explanation(&status)}</span>
            <dl class="facts">{facts} {purpose}</dl>
        </div>
    }
}

/// An RFC 3339 time from the server, shown in local time (as is, should it not parse).
#[component]
fn LocalTime(
    /// The server's text, e.g. `2026-11-29T17:00:00Z`.
    iso: String,
    /// The element's test id.
    testid: &'static str,
) -> impl IntoView {
    let local = parse_rfc3339(&iso).map_or_else(|| iso.clone(), browser::local_time);
    view! { <time data-testid=testid datetime=iso>{local}</time> }
}
