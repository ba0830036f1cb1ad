// Browser tests of the built UI (dist/) served by the real token-service binary.
// Run from the repository root after `trunk build --release` and `cargo build -p backend`:
//   (cd e2e && npm ci && npm test)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  closedPort, openBrowser, screenshot, startServer, uiWithConfig, validateDirectly,
} from './harness.js';

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const sel = (testid, extra = '') => `[data-testid="${testid}"]${extra}`;

/** Issues a token through the UI (optionally with a lifetime) and returns it. */
async function issueInUi(page, lifetime) {
  if (lifetime !== undefined) await page.fill('#lifetime', String(lifetime));
  await page.click('#issue-button');
  const tokenBox = await page.waitForSelector(sel('issued-token'));
  return tokenBox.inputValue();
}

/** Clicks Validate and waits for a result whose data-valid/data-reason match. */
async function validateInUi(page, { valid, reason = '' }) {
  await page.click('#validate-button');
  return readResult(page, { valid, reason });
}

async function readResult(page, { valid, reason = '' }) {
  const result = await page.waitForSelector(
    sel('validate-result', `[data-valid="${valid}"][data-reason="${reason}"]`),
    { timeout: 10_000 },
  );
  return {
    verdict: await (await result.$(sel('validate-verdict'))).textContent(),
    message: await (await result.$(sel('validate-message'))).textContent(),
  };
}

/** Runs `body(page, server)` with a fresh server and browser, stopped afterwards. */
async function withPage(body, { serverOptions, prepare } = {}) {
  const server = await startServer(serverOptions);
  const browser = await openBrowser();
  try {
    if (prepare) await prepare(browser.context, server);
    await browser.page.goto(`${server.url}/`);
    await body(browser.page, server, browser);
    assert.deepEqual(browser.errors, [], 'no uncaught errors in the page');
  } finally {
    await browser.close();
    await server.stop();
  }
}

describe('the token page on its own origin', () => {
  test('issuing shows the token, its expiration in local time and a ticking countdown', () =>
    withPage(async (page, server) => {
      const apiBase = await page.waitForSelector(sel('api-base', '[data-source="same origin"]'));
      assert.equal(await apiBase.textContent(), server.url);

      const token = await issueInUi(page, 90);
      assert.match(token, JWT);
      assert.equal(await page.inputValue('#validate-token'), token, 'the validate box is filled');

      const expiration = await page.$(sel('expiration'));
      const iso = await expiration.getAttribute('datetime');
      assert.match(iso, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const secondsLeft = (Date.parse(iso) - Date.now()) / 1000;
      assert.ok(secondsLeft > 80 && secondsLeft <= 91, `expires in ${secondsLeft} s`);
      const expected = await page.evaluate(
        (at) => new Date(at).toLocaleString('en-US', { dateStyle: 'medium', timeStyle: 'long' }),
        iso,
      );
      assert.equal(await expiration.textContent(), expected);
      assert.match(expected, /GMT\+1$/, 'shown in the browser time zone (Europe/Berlin), not UTC');

      const first = await page.textContent(sel('countdown'));
      assert.match(first, /^01:(2\d|30)$/);
      await page.waitForFunction(
        ([s, before]) => document.querySelector(s).textContent !== before,
        [sel('countdown'), first],
        { timeout: 3000 },
      );
      const later = await page.textContent(sel('countdown'));
      const asSeconds = (t) => Number(t.slice(0, 2)) * 60 + Number(t.slice(3));
      assert.ok(asSeconds(later) < asSeconds(first), `${later} after ${first}`);
    }));

  test('a token is valid once, then already used', () =>
    withPage(async (page) => {
      await issueInUi(page);
      assert.deepEqual(await validateInUi(page, { valid: true }), {
        verdict: 'Valid',
        message: 'Token is valid and has now been used',
      });
      assert.deepEqual(await validateInUi(page, { valid: false, reason: 'already_used' }), {
        verdict: 'Invalid: already used',
        message: 'Token has already been used',
      });
      assert.equal(await page.isEnabled('#validate-button'), true);
      await screenshot(page, 'token-page');
    }));

  test('a double click on Validate sends one request and shows valid', () =>
    withPage(async (page) => {
      const posts = [];
      page.on('request', (r) => { if (r.method() === 'POST') posts.push(r.url()); });

      // A real double click.
      await issueInUi(page);
      await page.dblclick('#validate-button');
      assert.equal((await readResult(page, { valid: true })).verdict, 'Valid');

      // Two clicks in one task, before any re-render can disable the button.
      await page.fill('#lifetime', '120');
      await page.click('#issue-button');
      await page.waitForSelector(sel('validate-result'), { state: 'detached' });
      await page.waitForSelector(sel('issued-token'));
      await page.evaluate(() => {
        const button = document.getElementById('validate-button');
        button.click();
        button.click();
      });
      assert.equal((await readResult(page, { valid: true })).verdict, 'Valid');

      await page.waitForTimeout(500); // room for a second answer, were one on its way
      assert.equal(posts.length, 2, `one POST per token: ${posts.join(', ')}`);
      assert.equal((await page.$$(sel('validate-result'))).length, 1);
      assert.equal(await page.getAttribute(sel('validate-result'), 'data-valid'), 'true');
    }));

  test('an expired token counts down to "expired" and is refused', () =>
    withPage(async (page) => {
      await issueInUi(page, 2);
      await page.waitForFunction(
        (s) => document.querySelector(s).textContent === 'expired',
        sel('countdown'),
        { timeout: 5000 },
      );
      assert.equal(await page.getAttribute(sel('countdown'), 'class'), 'countdown expired');
      assert.deepEqual(await validateInUi(page, { valid: false, reason: 'expired' }), {
        verdict: 'Invalid: expired',
        message: 'Token has expired',
      });
    }));

  test("a lifetime the server refuses shows the server's message", () =>
    withPage(async (page, server) => {
      const requests = [];
      page.on('request', (r) => { if (new URL(r.url()).pathname === '/tokens') requests.push(r.url()); });
      await page.fill('#lifetime', 'ten');
      await page.click('#issue-button');
      assert.equal(
        await page.textContent(sel('lifetime-error')),
        'Lifetime must be a whole number of seconds (1 or more), or blank for the default.',
      );
      assert.deepEqual(requests, [], 'nothing is sent for a lifetime that is not a number');

      const direct = await fetch(`${server.url}/tokens?ttl=999999999`);
      assert.equal(direct.status, 400);
      const { message } = await direct.json();
      await page.fill('#lifetime', '999999999');
      await page.click('#issue-button');
      const error = await page.waitForSelector(sel('issue-error'));
      assert.equal(await error.textContent(), `The server refused the request (HTTP 400): ${message}`);
      assert.equal(await page.textContent(sel('lifetime-error')), '');
      assert.equal(await page.$(sel('issued-token')), null);
      assert.deepEqual(requests, [`${server.url}/tokens?ttl=999999999`]);
    }));

  test('a malformed pasted token is shown as invalid with the reason', () =>
    withPage(async (page) => {
      await page.click('#validate-button');
      assert.equal(await page.textContent(sel('validate-input-error')), 'Paste a token first.');
      assert.equal(await page.$(sel('validate-result')), null);
      await page.fill('#validate-token', '  not-a-token\n');
      const result = await validateInUi(page, { valid: false, reason: 'malformed_token' });
      assert.equal(result.verdict, 'Invalid: not a token');
      assert.match(result.message, /^Token is malformed: /);
    }));

  test('Copy puts the token on the clipboard', () =>
    withPage(async (page, server, { context }) => {
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
      const token = await issueInUi(page);
      await page.click('#copy-token');
      await page.waitForSelector(sel('copy-status', ':has-text("Copied to the clipboard.")'));
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
    }));

  test('without the Clipboard API, Copy selects the token and says to press Ctrl+C', () =>
    withPage(async (page) => {
      const token = await issueInUi(page);
      await page.click('#copy-token');
      const status = await page.waitForSelector(sel('copy-status', ':has-text("Ctrl+C")'));
      assert.equal(await status.textContent(), 'Token selected: press Ctrl+C (⌘C on a Mac) to copy it.');
      const selection = await page.evaluate(() => {
        const box = document.activeElement;
        return { id: box.id, text: box.value.slice(box.selectionStart, box.selectionEnd) };
      });
      assert.deepEqual(selection, { id: 'issued-token', text: token });
    }, {
      // As on a plain-HTTP site, which is not a secure context.
      prepare: (context) => context.addInitScript(() => {
        Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined });
      }),
    }));
});

describe('config.json chooses the API at run time', () => {
  let apiServer;
  before(async () => { apiServer = await startServer({ args: ['--allowed-origins', '*'] }); });
  after(() => apiServer?.stop());

  test('API calls go to the configured server', async () => {
    const ui = uiWithConfig(JSON.stringify({ apiBaseUrl: `${apiServer.url}/` }));
    try {
      await withPage(async (page, pageServer) => {
        const calls = [];
        page.on('request', (r) => { if (new URL(r.url()).pathname === '/tokens') calls.push(r.url()); });
        const apiBase = await page.waitForSelector(sel('api-base', '[data-source="from config.json"]'));
        assert.equal(await apiBase.textContent(), apiServer.url);

        const token = await issueInUi(page, 60);
        assert.match(token, JWT);
        assert.equal((await validateInUi(page, { valid: true })).verdict, 'Valid');
        assert.deepEqual(calls, [`${apiServer.url}/tokens?ttl=60`, `${apiServer.url}/tokens`]);

        // The page's own server has its own key: the token is not one of its own.
        const own = await validateDirectly(pageServer.url, token);
        assert.equal(own.body.reason, 'invalid_signature');
        const configured = await validateDirectly(apiServer.url, token);
        assert.equal(configured.body.reason, 'already_used');
      }, { serverOptions: { uiDir: ui.dir } });
    } finally {
      ui.remove();
    }
  });

  test('an unreachable API shows a network error, not a hang', async () => {
    const port = await closedPort();
    const ui = uiWithConfig(JSON.stringify({ apiBaseUrl: `http://127.0.0.1:${port}` }));
    try {
      await withPage(async (page) => {
        await page.waitForSelector(sel('api-base', '[data-source="from config.json"]'));
        await page.click('#issue-button');
        const error = await page.waitForSelector(sel('issue-error'), { timeout: 5000 });
        assert.match(
          await error.textContent(),
          new RegExp(`^Network error: could not reach http://127\\.0\\.0\\.1:${port}/tokens \\(`),
        );
        assert.equal(await page.isEnabled('#issue-button'), true, 'the button is usable again');
        await screenshot(page, 'network-error');
      }, { serverOptions: { uiDir: ui.dir } });
    } finally {
      ui.remove();
    }
  });

  test('a config.json that is not JSON means same origin', async () => {
    const ui = uiWithConfig('<html>not json</html>');
    try {
      await withPage(async (page, pageServer) => {
        const apiBase = await page.waitForSelector(sel('api-base', '[data-source="same origin"]'));
        assert.equal(await apiBase.textContent(), pageServer.url);
        await issueInUi(page);
        assert.equal((await validateInUi(page, { valid: true })).verdict, 'Valid');
      }, { serverOptions: { uiDir: ui.dir } });
    } finally {
      ui.remove();
    }
  });
});
