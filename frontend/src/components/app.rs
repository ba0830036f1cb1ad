//! The page: header, the issue and validate panels, and a footer naming the API in use.
//!
//! At start it fetches `config.json` once and chooses the API base
//! ([`crate::api_base::choose_api_base`]); the buttons stay disabled until that is settled.

use crate::api;
use crate::api_base::{ApiBase, ApiChoice, choose_api_base};
use crate::browser;
use crate::components::issue::IssuePanel;
use crate::components::issuer_key::IssuerKeyForm;
use crate::components::validate::{ValidateFields, ValidatePanel};
use crate::issuer_key::IssuerKey;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// The whole page. The validate form is shared with the issue panel, which fills it with each
/// new token (and its purpose and subject) for convenience.
#[component]
pub fn App() -> impl IntoView {
    let choice = RwSignal::new(None::<Result<ApiChoice, String>>);
    spawn_local(async move {
        let config = api::fetch_config().await;
        let chosen = choose_api_base(&browser::page_origin(), config.as_deref());
        match &chosen {
            Ok(ApiChoice { base, fallback_reason: Some(why) }) => {
                leptos::logging::log!("API base {base} (same origin: {why})");
            }
            Ok(ApiChoice { base, fallback_reason: None }) => {
                leptos::logging::log!("API base {base} (from config.json)");
            }
            Err(e) => leptos::logging::error!("{e}"),
        }
        choice.set(Some(chosen));
    });
    let api: Signal<Option<ApiBase>> = Memo::new(move |_| {
        choice.with(|c| c.as_ref().and_then(|c| c.as_ref().ok()).map(|c| c.base.clone()))
    })
    .into();
    let validate = ValidateFields::new();
    // Memory only: never written to storage, so a reload forgets it.
    let issuer_key = RwSignal::new(IssuerKey::default());

    view! {
        <header class="masthead">
            <h1>"One-time tokens"</h1>
            <p class="lede">"Issue a token that can be validated exactly once, then check one."</p>
        </header>
        <main class="panels">
            <IssuerKeyForm issuer_key=issuer_key />
            <IssuePanel api=api validate=validate issuer_key=issuer_key />
            <ValidatePanel api=api fields=validate issuer_key=issuer_key />
        </main>
        <footer class="footer">
            {move || choice.with(|c| match c {
                None => view! { <span data-testid="api-base">"Loading configuration…"</span> }.into_any(),
                Some(Ok(choice)) => {
                    let source = if choice.fallback_reason.is_some() { "same origin" } else { "from config.json" };
                    view! {
                        "API: "
                        <code id="api-base" data-testid="api-base" data-source=source>{choice.base.to_string()}</code>
                        " (" {source} ")"
                    }.into_any()
                }
                Some(Err(e)) => view! {
                    <span class="error" role="alert" data-testid="api-base">{e.clone()}</span>
                }.into_any(),
            })}
        </footer>
    }
}
