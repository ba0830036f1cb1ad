//! One optional text field: label, input and its error line. Purpose and subject appear in both
//! panels, so they share this one component (one copy in the wasm, not four).

use leptos::prelude::*;

/// A labelled text input bound to `value`, with `error` shown below it. The input's `id` and
/// `data-testid` are `id`; the error line's are `{id}-error`.
#[component]
pub fn TextField(
    /// The input's id, e.g. `issue-purpose`.
    id: &'static str,
    /// The label, e.g. `Purpose`.
    label: &'static str,
    /// Said after the label, in muted text, e.g. `(optional)`.
    note: &'static str,
    /// The placeholder.
    #[prop(optional)]
    placeholder: &'static str,
    /// Further ids describing the input (a hint paragraph), before the error line's.
    #[prop(optional)]
    described_by: &'static str,
    /// The text.
    value: RwSignal<String>,
    /// Why the text was not accepted, if it was not.
    #[prop(into)]
    error: Signal<Option<String>>,
) -> impl IntoView {
    let error_id = format!("{id}-error");
    let described_by = format!("{described_by} {error_id}").trim_start().to_owned();
    view! {
        <div>
            <label for=id>{label} " " <span class="hint">{note}</span></label>
            <input
                id=id
                data-testid=id
                type="text"
                autocomplete="off"
                spellcheck="false"
                placeholder=placeholder
                aria-describedby=described_by
                prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))
            />
            <p id=error_id.clone() class="error" role="alert" data-testid=error_id>{move || error.get()}</p>
        </div>
    }
}
