//! Entry point of the web UI: mounts [`frontend::App`] on `<body>`. Everything else lives in the
//! library crate.

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(frontend::App);
}

/// The UI only runs in a browser; natively this crate is built for its tests.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("the token service UI runs in a browser: build it with `trunk build --release`");
}
