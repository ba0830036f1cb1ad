// Test harness: starts the real token-service binary on a free port, copies the built UI with a
// chosen config.json, and opens Debian's Chromium through playwright-core (no browser download).
//
// Environment: TOKEN_SERVICE_BIN (default target/debug/token-service) and UI_DIR (default dist),
// both relative to the repository root; CHROMIUM (default /usr/bin/chromium).
// E2E_UI_URL and E2E_API_URL (both or neither): a page and an API already running elsewhere,
// whose config.json points the page at that API (scripts/aws-local: the UI on a static server,
// the API the Lambda binary under `cargo lambda watch`). startApp() then starts nothing.

import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const serviceBin = path.resolve(repoRoot, process.env.TOKEN_SERVICE_BIN ?? 'target/debug/token-service');
export const builtUi = path.resolve(repoRoot, process.env.UI_DIR ?? 'dist');
export const screenshotDir = path.join(repoRoot, 'e2e', 'screenshots');

// Flags that work as root with no network (shared/TOOLCHAIN.md). Playwright adds --headless and
// its own fresh --user-data-dir.
const CHROMIUM_FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage',
];

/** The page and API from E2E_UI_URL and E2E_API_URL, or null to start token-service. */
export const external = (() => {
  const { E2E_UI_URL: ui, E2E_API_URL: api } = process.env;
  if (!ui && !api) return null;
  if (!ui || !api) throw new Error('set both E2E_UI_URL and E2E_API_URL, or neither');
  return { url: ui.replace(/\/$/, ''), api: api.replace(/\/$/, '') };
})();

/**
 * Where a test's page and API are: `url` the page's origin, `api` the API base URL the page
 * uses, `apiSource` how the page chose it (its `api-base` element's data-source).
 * @typedef {{url: string, api: string, apiSource: string, stop: () => Promise<void>}} App
 */

/**
 * The external page and API if set (nothing to stop), else a fresh token-service serving both.
 * @returns {Promise<App>}
 */
export async function startApp() {
  if (external) return { ...external, apiSource: 'from config.json', stop: async () => {} };
  return startServer();
}

/**
 * Starts token-service on 127.0.0.1:0 with a fresh data dir and resolves once it prints its URL.
 * It serves the page and the API on one origin.
 * @param {{uiDir?: string, args?: string[]}} options
 * @returns {Promise<App>}
 */
export async function startServer({ uiDir = builtUi, args = [] } = {}) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'token-e2e-data-'));
  const child = spawn(
    serviceBin,
    ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--ui-dir', uiDir, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } },
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const url = await new Promise((resolve, reject) => {
      let stdout = '';
      const timer = setTimeout(() => reject(new Error(`no URL within 10 s; stderr: ${stderr}`)), 10_000);
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
        const found = stdout.match(/token-service listening on (http:\/\/\S+)/);
        if (found) { clearTimeout(timer); resolve(found[1]); }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`token-service exited with ${code}; stderr: ${stderr}`));
      });
      child.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
    return { url, api: url, apiSource: 'same origin', stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * A copy of the built UI whose config.json holds `config` (a string, written as is).
 * @returns {{dir: string, remove: () => void}}
 */
export function uiWithConfig(config) {
  const dir = mkdtempSync(path.join(tmpdir(), 'token-e2e-ui-'));
  cpSync(builtUi, dir, { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), config);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A fresh Chromium profile and page. Page errors and console errors are collected in `errors`.
 * @returns {Promise<{context: import('playwright-core').BrowserContext, page: import('playwright-core').Page, errors: string[], close: () => Promise<void>}>}
 */
export async function openBrowser() {
  const profile = mkdtempSync(path.join(tmpdir(), 'token-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
    locale: 'en-US',
    timezoneId: 'Europe/Berlin',
    viewport: { width: 900, height: 1000 },
  });
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, page, errors, close };
}

/** Saves a full-page screenshot as e2e/screenshots/NAME.png. */
export async function screenshot(page, name) {
  mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: true });
}

/** POST /tokens from Node, bypassing the UI. */
export async function validateDirectly(baseUrl, token) {
  const response = await fetch(`${baseUrl}/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  return { status: response.status, body: await response.json() };
}
