/**
 * The site's Content-Security-Policy, built from what the built `index.html` actually contains.
 *
 * trunk 0.21 injects an inline `<script type="module">` into `index.html` that imports the
 * hashed JS glue and instantiates the hashed `.wasm` (see trunk's
 * `src/pipelines/rust/output.rs`, `default_initializer`). Its text names those hashed files, so it
 * changes with every UI build. Rather than `'unsafe-inline'`, the policy allows exactly the inline
 * scripts (and styles) of the `index.html` being deployed, by SHA-256 hash (CSP Level 2
 * hash-source). A build whose `index.html` has no inline script gets a policy with no hashes.
 *
 * Pure functions: no CDK, so the tests can check hashes against known values.
 */
import { createHash } from 'node:crypto';

/** CloudFront's limit on the Content-Security-Policy value of a response headers policy. */
export const CSP_MAX_LENGTH = 1783;

/** Inline elements whose text CSP hash-sources cover. */
type InlineKind = 'script' | 'style';

/**
 * The `'sha256-…'` source of every inline `<script>` (without `src`) or `<style>` element, in
 * document order, without duplicates.
 *
 * The hash covers the element's text exactly as the browser sees it after the HTML parser's
 * input preprocessing, which turns CR LF and lone CR into LF; nothing else is normalized (the
 * leading and trailing newlines trunk writes are part of the hashed text).
 */
export function inlineHashes(html: string, kind: InlineKind): string[] {
  const text = html.replace(/\r\n?/g, '\n');
  // Script and style contents are raw text: they end at the first matching end tag.
  const element = new RegExp(`<${kind}\\b([^>]*)>([\\s\\S]*?)</${kind}\\s*>`, 'gi');
  const hashes: string[] = [];
  for (const [, attributes, body] of text.matchAll(element)) {
    if (kind === 'script' && /\ssrc\s*=/i.test(` ${attributes}`)) continue;
    if (body === '') continue;
    const source = `'sha256-${createHash('sha256').update(body, 'utf8').digest('base64')}'`;
    if (!hashes.includes(source)) hashes.push(source);
  }
  return hashes;
}

export interface CspInputs {
  /** Hash sources of the inline scripts of the deployed index.html. */
  readonly scriptHashes: readonly string[];
  /** Hash sources of the inline styles of the deployed index.html. */
  readonly styleHashes: readonly string[];
  /** Origins the page may fetch from besides its own: the API (scheme and host, no path). */
  readonly connectOrigins: readonly string[];
}

/**
 * The policy: nothing by default; scripts, styles, images and fetches from the site itself; the
 * API for fetches; WebAssembly compilation (`'wasm-unsafe-eval'`, which allows
 * `WebAssembly.instantiateStreaming` but not JavaScript `eval`); no framing, no plugins, no
 * `<base>` or form targets elsewhere.
 *
 * `connect-src 'self'` also covers trunk's `<link rel="preload" as="fetch">` of the wasm file,
 * the wasm fetch itself and the UI's fetch of `/config.json`.
 */
export function contentSecurityPolicy(inputs: CspInputs): string {
  const directives: [string, ...string[]][] = [
    ['default-src', "'none'"],
    ['script-src', "'self'", "'wasm-unsafe-eval'", ...inputs.scriptHashes],
    ['style-src', "'self'", ...inputs.styleHashes],
    ['img-src', "'self'"],
    ['connect-src', "'self'", ...inputs.connectOrigins],
    ['manifest-src', "'self'"],
    ['base-uri', "'none'"],
    ['form-action', "'none'"],
    ['frame-ancestors', "'none'"],
  ];
  return directives.map((d) => d.join(' ')).join('; ');
}
