//! The few browser facts the components need: the clock, the page origin, local time
//! formatting, random attempt ids and the clipboard. Kept apart so components hold no `web-sys` plumbing.

use crate::validation::uuid_v4;
use js_sys::{Date, Math, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Now, in epoch milliseconds (`Date.now()`).
pub fn now_ms() -> f64 {
    Date::now()
}

/// The page's origin, e.g. `http://127.0.0.1:3000` (`"null"` for `file://` pages).
pub fn page_origin() -> String {
    web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_else(|| "null".to_owned())
}

/// `epoch_secs` in the user's locale and time zone, e.g. `29 Nov 2026, 18:00:00 CET`.
pub fn local_time(epoch_secs: i64) -> String {
    let date = Date::new(&JsValue::from_f64(epoch_secs as f64 * 1000.0));
    let locale =
        web_sys::window().and_then(|w| w.navigator().language()).unwrap_or_else(|| "en".to_owned());
    let options = Object::new();
    // Setting plain string properties on a fresh object cannot fail.
    let _ = Reflect::set(&options, &"dateStyle".into(), &"medium".into());
    let _ = Reflect::set(&options, &"timeStyle".into(), &"long".into());
    String::from(date.to_locale_string(&locale, &options))
}

/// A fresh `Idempotency-Key` for one validation: a UUID v4 from `crypto.getRandomValues`.
///
/// Not `crypto.randomUUID()`: that exists only in secure contexts, and the UI may be served over
/// plain HTTP (S3 website hosting), where `getRandomValues` still works. Should even that fail,
/// `Math.random` fills in: the key is no secret (a replay needs the token too), it only has to
/// differ from this browser's other attempts.
pub fn attempt_key() -> String {
    let mut bytes = [0u8; 16];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        for byte in &mut bytes {
            *byte = (Math::random() * 256.0) as u8;
        }
    }
    uuid_v4(bytes)
}

/// Writes `text` to the clipboard with `navigator.clipboard.writeText`.
///
/// # Errors
/// When the Clipboard API is missing (pages served over plain HTTP, e.g. S3 website hosting,
/// are not a secure context) or the browser refuses; the caller then selects the text for a
/// manual copy.
pub async fn copy_to_clipboard(text: &str) -> Result<(), ()> {
    let navigator = web_sys::window().ok_or(())?.navigator();
    // `navigator.clipboard` is `undefined` outside secure contexts; web-sys would not notice.
    let clipboard = Reflect::get(&navigator, &"clipboard".into()).map_err(|_| ())?;
    let clipboard: web_sys::Clipboard = clipboard.dyn_into().map_err(|_| ())?;
    JsFuture::from(clipboard.write_text(text)).await.map(|_| ()).map_err(|_| ())
}
