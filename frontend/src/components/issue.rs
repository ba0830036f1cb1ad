//! The issue panel: an optional lifetime, purpose and subject (and whether the new token
//! supersedes the pair's unused ones), the Issue button, then the token with its expiration in
//! local time, a live countdown and a Copy button.

use crate::api;
use crate::api_base::ApiBase;
use crate::browser;
use crate::components::copy_button::CopyButton;
use crate::components::field::TextField;
use crate::components::validate::ValidateFields;
use crate::form::{FormErrors, can_supersede, read_issue_form};
use crate::issuer_key::IssuerKey;
use crate::request::RequestState;
use crate::timing::{format_remaining, parse_rfc3339, remaining_secs};
use leptos::ev::SubmitEvent;
use leptos::html::Textarea;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::IssueResponse;
use std::time::Duration;

/// How often the countdown is recomputed. Under a second, so it never skips a second visibly.
const TICK: Duration = Duration::from_millis(250);

/// Issues tokens. A new token is also written into the validate form, with the purpose and
/// subject it was issued for.
#[component]
pub fn IssuePanel(
    /// Where the API is; `None` while `config.json` is being read (the button is disabled).
    api: Signal<Option<ApiBase>>,
    /// The validate panel's form.
    validate: ValidateFields,
    /// The issuer key, if the service wants one (held in memory only).
    issuer_key: RwSignal<IssuerKey>,
) -> impl IntoView {
    let lifetime = RwSignal::new(String::new());
    let purpose = RwSignal::new(String::new());
    let subject = RwSignal::new(String::new());
    let supersede = RwSignal::new(false);
    let errors = RwSignal::new(FormErrors::default());
    // The answer, and whether it superseded the pair's earlier tokens.
    let state = RwSignal::new(RequestState::<(IssueResponse, bool)>::Idle);
    let pair = move || purpose.with(|p| subject.with(|s| can_supersede(p, s)));
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
        let read = read_issue_form(
            &lifetime.read_untracked(),
            &purpose.read_untracked(),
            &subject.read_untracked(),
            supersede.get_untracked(),
        );
        let request = match read {
            Ok(request) => request,
            Err(e) => return errors.set(e),
        };
        errors.set(FormErrors::default());
        // Checked here, synchronously, as well as by `disabled`: a second click that arrives
        // before the DOM update must not send a second request.
        if !state.try_update(RequestState::start).unwrap_or(false) {
            return;
        }
        let authorization = issuer_key.with_untracked(IssuerKey::authorization);
        spawn_local(async move {
            let outcome = api::issue(&base, &request, authorization.as_deref()).await;
            issuer_key.try_update(|k| k.record(outcome.as_ref().err()));
            if let Ok(issued) = &outcome {
                validate.token.set(issued.token.clone());
                validate.purpose.set(request.purpose.clone().unwrap_or_default());
                validate.subject.set(request.subject.clone().unwrap_or_default());
            }
            state.try_update(|s| s.finish(outcome.map(|issued| (issued, request.supersede))));
        });
    };

    view! {
        <section class="panel" aria-labelledby="issue-heading">
            <h2 id="issue-heading">"Issue a token"</h2>
            <form on:submit=on_submit novalidate>
                <label for="lifetime">"Lifetime in seconds " <span class="hint">"(optional)"</span></label>
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
                <p id="lifetime-error" class="error" role="alert" data-testid="lifetime-error">{move || errors.with(|e| e.lifetime.clone())}</p>
                <div class="fields">
                    <TextField
                        id="issue-purpose"
                        label="Purpose"
                        note="(optional)"
                        placeholder="e.g. password-reset"
                        value=purpose
                        error=Signal::derive(move || errors.with(|e| e.purpose.clone()))
                    />
                    <TextField
                        id="issue-subject"
                        label="Subject"
                        note="(optional)"
                        placeholder="e.g. account 12345"
                        described_by="issue-subject-hint"
                        value=subject
                        error=Signal::derive(move || errors.with(|e| e.subject.clone()))
                    />
                </div>
                <p id="issue-subject-hint" class="hint">
                    "The subject is an opaque id, such as an account number. Not an e-mail address: \
                     anyone who holds the token can read its claims."
                </p>
                <label class="check">
                    <input
                        type="checkbox"
                        id="supersede"
                        data-testid="supersede"
                        disabled=move || !pair()
                        prop:checked=move || supersede.get() && pair()
                        on:change=move |ev| supersede.set(event_target_checked(&ev))
                    />
                    " Replace earlier tokens (supersede) "
                    <span class="hint">"revokes the unused tokens of this purpose and subject; needs both"</span>
                </label>
                <button
                    type="submit"
                    id="issue-button"
                    data-testid="issue-button"
                    disabled=move || in_flight() || api.with(Option::is_none)
                    aria-busy=move || in_flight().to_string()
                >
                    {move || if in_flight() { "Issuing…" } else { "Issue token" }}
                </button>
            </form>
            <div aria-live="polite" data-testid="issue-outcome">
                {move || state.with(|s| s.error().map(|e| view! {
                    <p class="error" role="alert" data-testid="issue-error">{e.to_string()}</p>
                }))}
                {move || state.with(|s| s.answer().cloned()).map(|(issued, superseded)| view! {
                    <Issued issued=issued superseded=superseded now=now />
                })}
            </div>
        </section>
    }
}

/// One issued token: the token, Copy, its expiration in local time and the countdown.
#[component]
fn Issued(
    /// The server's answer.
    issued: IssueResponse,
    /// Whether it was issued with `supersede=true`.
    superseded: bool,
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
            {superseded.then(|| view! {
                <p class="hint" data-testid="superseded-note">
                    "Earlier unused tokens of this purpose and subject are revoked."
                </p>
            })}
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
