//! The issuer-key form: shown only after the API answered `401` to an issue or a revoke
//! ([`crate::issuer_key`]). The key typed here goes into the page's memory and out of the field
//! at once; the next issue or revoke sends it.

use crate::issuer_key::{Asking, IssuerKey};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

/// Asks for the issuer key when the API wants one.
#[component]
pub fn IssuerKeyForm(
    /// The key and whether to ask for it, shared with the panels that send it.
    issuer_key: RwSignal<IssuerKey>,
) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let error = RwSignal::new(None::<&'static str>);
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match issuer_key.try_update(|k| k.provide(&text.get_untracked())) {
            Some(Ok(())) => {
                error.set(None);
                text.set(String::new());
            }
            Some(Err(e)) => error.set(Some(e)),
            None => {}
        }
    };
    let asking_for_input =
        move || issuer_key.with(|k| matches!(k.asking(), Asking::Needed | Asking::Refused));

    view! {
        {move || issuer_key.with(IssuerKey::prompt).map(|prompt| view! {
            <section class="panel issuer-key" aria-labelledby="issuer-key-heading" data-testid="issuer-key-form">
                <h2 id="issuer-key-heading">"Issuer key"</h2>
                <p data-testid="issuer-key-prompt" role="status">{prompt}</p>
                <Show when=asking_for_input>
                    <form on:submit=on_submit novalidate>
                        <label for="issuer-key">"Key"</label>
                        <div class="row">
                        <input
                            id="issuer-key"
                            data-testid="issuer-key"
                            // Kept out of autofill; the key lives in this page's memory only.
                            type="password"
                            autocomplete="off"
                            spellcheck="false"
                            aria-describedby="issuer-key-error"
                            prop:value=move || text.get()
                            on:input=move |ev| text.set(event_target_value(&ev))
                        />
                        <button type="submit" id="issuer-key-button" data-testid="issuer-key-button">
                            "Use key"
                        </button>
                        </div>
                        <p id="issuer-key-error" class="error" role="alert" data-testid="issuer-key-error">{move || error.get()}</p>
                    </form>
                </Show>
            </section>
        })}
    }
}
