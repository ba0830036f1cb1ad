//! The Copy button. It uses `navigator.clipboard`; where that is missing or refused (a page
//! served over plain HTTP, such as S3 website hosting, is not a secure context) it selects the
//! token instead and asks the user to press Ctrl+C.

use crate::browser;
use leptos::html::Textarea;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Copies `text`; on failure selects the contents of `target` for a manual copy.
#[component]
pub fn CopyButton(
    /// What to copy.
    text: String,
    /// The element showing `text`, selected when the clipboard is unavailable.
    target: NodeRef<Textarea>,
) -> impl IntoView {
    let status = RwSignal::new(String::new());
    let on_click = move |_| {
        let text = text.clone();
        spawn_local(async move {
            match browser::copy_to_clipboard(&text).await {
                Ok(()) => status.set("Copied to the clipboard.".to_owned()),
                Err(()) => {
                    if let Some(area) = target.get_untracked() {
                        let _ = area.focus();
                        area.select();
                    }
                    status.set("Token selected: press Ctrl+C (⌘C on a Mac) to copy it.".to_owned());
                }
            }
        });
    };
    view! {
        <div class="row copy">
            <button type="button" id="copy-token" data-testid="copy-token" class="secondary" on:click=on_click>
                "Copy"
            </button>
            <span class="hint" aria-live="polite" data-testid="copy-status">{move || status.get()}</span>
        </div>
    }
}
