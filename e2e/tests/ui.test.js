// Browser tests of the built UI (dist/) served by the real token-service binary.
// Run from the repository root after `trunk build --release` and `cargo build -p backend`:
//   (cd e2e && npm ci && npm test)
// With E2E_UI_URL and E2E_API_URL set (harness.js), every test but the config.json ones runs
// against that page and API instead: scripts/test does so against scripts/aws-local.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  closedPort, external, openBrowser, screenshot, startApp, startServer, uiWithConfig,
  validateDirectly,
} from './harness.js';

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
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

/**
 * Runs `body(page, server)` with a fresh browser, stopped afterwards, on the app of startApp()
 * (external or a fresh token-service), or on a token-service started with `serverOptions`.
 */
async function withPage(body, { serverOptions, prepare } = {}) {
  const server = serverOptions ? await startServer(serverOptions) : await startApp();
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
      const apiBase = await page.waitForSelector(sel('api-base', `[data-source="${server.apiSource}"]`));
      assert.equal(await apiBase.textContent(), server.api);

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

      const direct = await fetch(`${server.api}/tokens?ttl=999999999`);
      assert.equal(direct.status, 400);
      const { message } = await direct.json();
      await page.fill('#lifetime', '999999999');
      await page.click('#issue-button');
      const error = await page.waitForSelector(sel('issue-error'));
      assert.equal(await error.textContent(), `The server refused the request (HTTP 400): ${message}`);
      assert.equal(await page.textContent(sel('lifetime-error')), '');
      assert.equal(await page.$(sel('issued-token')), null);
      assert.deepEqual(requests, [`${server.api}/tokens?ttl=999999999`]);
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

/** Collects the page's `POST /tokens` requests, with when each was sent (epoch ms). */
function recordValidations(page) {
  const sent = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && new URL(r.url()).pathname === '/tokens') sent.push({ request: r, at: Date.now() });
  });
  return {
    count: () => sent.length,
    keys: () => Promise.all(sent.map(({ request }) => request.headerValue('idempotency-key'))),
    times: () => sent.map(({ at }) => at),
  };
}

/**
 * Routes the page's `POST /tokens` through `handle(route, n)`, n counting from 1; other requests
 * (and a handler returning without settling the route) go on to the server unchanged.
 */
async function routeValidations(page, handle) {
  let n = 0;
  await page.route((url) => url.pathname === '/tokens', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    n += 1;
    if (!(await handle(route, n))) await route.continue();
  });
}

/** Forwards the request to the real server, then fails it in the browser: a lost answer. */
async function loseTheAnswer(route) {
  const response = await route.fetch();
  const body = await response.json();
  await route.abort('failed');
  return body;
}

describe('a validation is done exactly once, even when its answer is lost', () => {
  test('each Validate click sends its own Idempotency-Key, and a used token says when', () =>
    withPage(async (page) => {
      const posts = recordValidations(page);
      await issueInUi(page);
      assert.equal((await validateInUi(page, { valid: true })).verdict, 'Valid');
      assert.equal(await page.getAttribute(sel('validate-result'), 'data-replayed'), 'false');
      assert.equal(await page.$(sel('used-at')), null, 'a first use needs no "used at"');

      assert.equal((await validateInUi(page, { valid: false, reason: 'already_used' })).verdict, 'Invalid: already used');
      const usedAt = await page.$(sel('used-at'));
      const iso = await usedAt.getAttribute('datetime');
      assert.match(iso, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
      const ago = (Date.now() - Date.parse(iso)) / 1000;
      assert.ok(ago >= -1 && ago < 30, `used ${ago} s ago`);
      const expected = await page.evaluate(
        (at) => new Date(Math.floor(Date.parse(at) / 1000) * 1000)
          .toLocaleString('en-US', { dateStyle: 'medium', timeStyle: 'long' }),
        iso,
      );
      assert.equal(await usedAt.textContent(), expected, 'in local time, like the expiration');

      const keys = await posts.keys();
      assert.equal(keys.length, 2);
      for (const key of keys) assert.match(key, UUID_V4);
      assert.notEqual(keys[0], keys[1], 'a new click is a new attempt');
    }));

  test('a lost answer is retried with the same key and shows valid, not already used', () =>
    withPage(async (page, server) => {
      const token = await issueInUi(page);
      const posts = recordValidations(page);
      const lost = [];
      await routeValidations(page, async (route, n) => {
        if (n > 1) return false;
        lost.push(await loseTheAnswer(route));
        return true;
      });

      await page.click('#validate-button');
      await page.waitForSelector(sel('validate-progress', ':has-text("Connection problem, retrying…")'));
      const shown = await readResult(page, { valid: true });
      assert.equal(shown.verdict, 'Valid');
      assert.match(shown.message, /^Token is valid/, "the server's replay message");

      assert.equal(lost.length, 1);
      assert.equal(lost[0].isValid, true, 'the server used the token on the first try');
      const keys = await posts.keys();
      assert.equal(keys.length, 2, 'one retry');
      assert.match(keys[0], UUID_V4);
      assert.equal(keys[1], keys[0], 'the retry repeats the same attempt');
      assert.equal(await page.getAttribute(sel('validate-result'), 'data-replayed'), 'true');
      assert.match(await page.textContent(sel('validate-note')), /^Confirmed after a retry/);
      assert.equal(await page.$(sel('validate-progress')), null);
      assert.equal(await page.textContent('#validate-button'), 'Validate');

      // Used exactly once: any other attempt is refused.
      const again = await validateDirectly(server.api, token);
      assert.equal(again.body.reason, 'already_used');
    }));

  test('a 503 outcome_unknown is retried after Retry-After with the same key', () =>
    withPage(async (page) => {
      await issueInUi(page);
      const posts = recordValidations(page);
      await routeValidations(page, async (route, n) => {
        if (n > 1) return false;
        await route.fulfill({
          status: 503,
          // With the CORS headers the API sends, so a cross-origin page may read the answer.
          headers: {
            'retry-after': '1',
            'content-type': 'application/json',
            'access-control-allow-origin': new URL(page.url()).origin,
            'access-control-expose-headers': 'retry-after,idempotency-key',
          },
          body: JSON.stringify({
            isValid: false,
            reason: 'outcome_unknown',
            message: 'Could not confirm whether the token was used; retry with the same Idempotency-Key',
          }),
        });
        return true;
      });

      await page.click('#validate-button');
      await page.waitForSelector(sel('validate-progress', ':has-text("Connection problem, retrying… (try 2 of 4)")'));
      assert.equal(await page.isEnabled('#validate-button'), false, 'no second click while retrying');
      assert.equal((await readResult(page, { valid: true })).verdict, 'Valid');

      const keys = await posts.keys();
      assert.equal(keys.length, 2);
      assert.equal(keys[1], keys[0]);
      const [first, second] = posts.times();
      assert.ok(second - first >= 900, `waited ${second - first} ms for Retry-After: 1`);
    }));

  test('when every try fails the outcome is unknown, and Retry confirms the validation', () =>
    withPage(async (page, server) => {
      const token = await issueInUi(page);
      const posts = recordValidations(page);
      let online = false;
      const lost = [];
      await routeValidations(page, async (route, n) => {
        if (online) return false;
        if (n === 1) lost.push(await loseTheAnswer(route));
        else await route.abort('failed');
        return true;
      });

      await page.click('#validate-button');
      const error = await page.waitForSelector(sel('validate-error', '[data-outcome="unknown"]'), { timeout: 15_000 });
      assert.match(
        await error.textContent(),
        /^The outcome is unknown: the token may or may not have been used\. No definite answer after 4 tries\. Last error: Network error: .* Pressing Retry is safe: /,
      );
      assert.equal(posts.count(), 4, 'the first try and 3 retries');
      assert.equal(await page.textContent('#validate-button'), 'Retry');
      assert.equal(await page.isEnabled('#validate-button'), true);
      assert.equal(await page.$(sel('validate-result')), null);
      await screenshot(page, 'outcome-unknown');

      online = true;
      await page.click('#validate-button');
      assert.equal((await readResult(page, { valid: true })).verdict, 'Valid');
      assert.equal(await page.getAttribute(sel('validate-result'), 'data-replayed'), 'true');
      const keys = await posts.keys();
      assert.equal(keys.length, 5);
      assert.deepEqual(new Set(keys).size, 1, `one key for the click and its Retry: ${keys.join(', ')}`);
      assert.equal(lost[0].isValid, true);
      assert.equal((await validateDirectly(server.api, token)).body.reason, 'already_used');
    }));

  test('after an unknown outcome, a different token gets Validate and a fresh key', () =>
    withPage(async (page) => {
      await issueInUi(page);
      const posts = recordValidations(page);
      let online = false;
      await routeValidations(page, async (route) => {
        if (online) return false;
        await route.abort('failed');
        return true;
      });
      await page.click('#validate-button');
      await page.waitForSelector(sel('validate-error', '[data-outcome="unknown"]'), { timeout: 15_000 });
      assert.equal(await page.textContent('#validate-button'), 'Retry');

      online = true;
      await page.fill('#lifetime', '60');
      await page.click('#issue-button');
      await page.waitForSelector(sel('validate-error'), { state: 'detached' });
      assert.equal(await page.textContent('#validate-button'), 'Validate');
      assert.equal((await validateInUi(page, { valid: true })).verdict, 'Valid');
      assert.equal(await page.getAttribute(sel('validate-result'), 'data-replayed'), 'false');
      const keys = await posts.keys();
      assert.equal(keys.length, 5);
      assert.equal(new Set(keys.slice(0, 4)).size, 1);
      assert.notEqual(keys[4], keys[0]);
    }));
});

// Skipped against an external page and API (E2E_UI_URL/E2E_API_URL): these start
// token-service servers of their own, with a config.json each. (Node 20 cancels the tests of a
// suite given an options object, so the choice is describe.skip.)
(external ? describe.skip : describe)('config.json chooses the API at run time', () => {
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

/**
 * Fills the issue form (fields left undefined are left as they are), clicks Issue and returns
 * the new token, once it has replaced any earlier one.
 */
async function issueWith(page, { lifetime, purpose, subject, supersede } = {}) {
  const before = await page.$eval('#issued-token', (box) => box.value).catch(() => null);
  if (lifetime !== undefined) await page.fill('#lifetime', String(lifetime));
  if (purpose !== undefined) await page.fill('#issue-purpose', purpose);
  if (subject !== undefined) await page.fill('#issue-subject', subject);
  if (supersede !== undefined) await page.setChecked('#supersede', supersede);
  await page.click('#issue-button');
  await page.waitForFunction((old) => {
    const box = document.getElementById('issued-token');
    return (box !== null && box.value !== old) || document.querySelector('[data-testid="issue-error"]');
  }, before, { timeout: 10_000 });
  const error = await page.$(sel('issue-error'));
  if (error) throw new Error(`issuing failed: ${await error.textContent()}`);
  return page.inputValue('#issued-token');
}

/**
 * Clicks Check status (`check`) or Revoke (`revoke`), waits for the server's answer and then for
 * a shown result in `state`; returns its headline and explanation.
 */
async function lookInUi(page, action, state) {
  const path = action === 'check' ? '/tokens/status' : '/tokens/revoke';
  await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === path),
    page.click(action === 'check' ? '#status-button' : '#revoke-button'),
  ]);
  const result = await page.waitForSelector(
    sel('status-result', `[data-action="${action}"][data-state="${state}"]`),
    { timeout: 10_000 },
  );
  return {
    headline: await (await result.$(sel('status-headline'))).textContent(),
    explanation: await (await result.$(sel('status-explanation'))).textContent(),
  };
}

/** The claims of a JWT, decoded here in Node: what the page must show. */
function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

/** `epochSecs` as the page shows times: the browser's locale and time zone. */
function localTime(page, epochSecs) {
  return page.evaluate(
    (at) => new Date(at).toLocaleString('en-US', { dateStyle: 'medium', timeStyle: 'long' }),
    epochSecs * 1000,
  );
}

describe('purpose, subject, Check status and Revoke', () => {
  test('a token issued with a purpose and subject shows them in its claims, decoded and not verified', () =>
    withPage(async (page) => {
      const issues = [];
      page.on('request', (r) => { if (r.method() === 'GET' && new URL(r.url()).pathname === '/tokens') issues.push(r.url()); });
      const token = await issueWith(page, { lifetime: 120, purpose: 'password-reset', subject: 'acct 42/ü' });
      assert.equal(issues.length, 1);
      const query = new URL(issues[0]).searchParams;
      assert.deepEqual([...query], [['ttl', '120'], ['purpose', 'password-reset'], ['subject', 'acct 42/ü']]);

      const claims = claimsOf(token);
      assert.equal(claims.purpose, 'password-reset');
      assert.equal(claims.sub, 'acct 42/ü');
      assert.equal(claims.exp - claims.iat, 120);

      assert.equal(await page.textContent(sel('claims-badge')), 'Decoded, not verified');
      assert.equal(await page.textContent(sel('claim-purpose')), 'password-reset');
      assert.equal(await page.textContent(sel('claim-sub')), 'acct 42/ü');
      assert.equal(await page.textContent(sel('claim-uuid')), claims.uuid);
      assert.match(claims.uuid, UUID_V4);
      for (const name of ['iat', 'exp']) {
        assert.equal(await page.getAttribute(sel(`claim-${name}`), 'data-raw'), String(claims[name]));
        assert.equal(await page.textContent(sel(`claim-${name}`)), await localTime(page, claims[name]));
      }
      const expiration = await page.getAttribute(sel('expiration'), 'datetime');
      assert.equal(Date.parse(expiration) / 1000, claims.exp, 'the same expiry as the issue panel');

      // The validate form is filled for this token.
      assert.equal(await page.inputValue('#validate-token'), token);
      assert.equal(await page.inputValue('#validate-purpose'), 'password-reset');
      assert.equal(await page.inputValue('#validate-subject'), 'acct 42/ü');
      await screenshot(page, 'claims');

      // A token issued without them says so, and clears the validate form's purpose and subject.
      await issueWith(page, { purpose: '', subject: '' });
      assert.equal(await page.textContent(sel('claim-purpose')), 'none');
      assert.equal(await page.textContent(sel('claim-sub')), 'none');
      assert.equal(await page.getAttribute(sel('claim-sub'), 'data-raw'), null);
      assert.equal(await page.inputValue('#validate-purpose'), '');
      assert.equal(await page.inputValue('#validate-subject'), '');

      // Whatever is pasted is decoded as it is typed.
      await page.fill('#validate-token', 'not-a-token');
      assert.equal(
        await page.textContent(sel('claims-error')),
        'Claims not readable: not a JWT: a JWT is three parts separated by dots',
      );
      assert.equal(await page.$(sel('claims')), null);
      await page.fill('#validate-token', '');
      assert.equal(await page.$(sel('claims-error')), null, 'an empty box shows nothing');
    }));

  test('a wrong purpose or subject is refused without using the token, and Check status still says unused', () =>
    withPage(async (page) => {
      await issueWith(page, { purpose: 'login', subject: 'acct-7' });
      const expiration = await page.getAttribute(sel('expiration'), 'datetime');

      await page.fill('#validate-purpose', 'password-reset');
      assert.deepEqual(await validateInUi(page, { valid: false, reason: 'wrong_purpose' }), {
        verdict: 'Not accepted: issued for another purpose',
        message: 'Token was issued for another purpose',
      });
      assert.equal(
        await page.textContent(sel('validate-note')),
        'The token was not used: it can still be validated with the purpose and subject it was issued for.',
      );

      assert.deepEqual(await lookInUi(page, 'check', 'unused'), {
        headline: 'Unused',
        explanation: 'Not validated yet: checking did not use it, and it can still be validated once.',
      });
      assert.equal(await page.textContent(sel('status-purpose')), 'login');
      assert.equal(await page.getAttribute(sel('status-expiration'), 'datetime'), expiration);
      assert.equal(
        await page.textContent(sel('status-expiration')),
        await localTime(page, Date.parse(expiration) / 1000),
      );
      assert.equal(await page.getAttribute(sel('validate-result'), 'data-reason'), 'wrong_purpose', 'the verdict stays');

      await page.fill('#validate-purpose', 'login');
      assert.equal(await page.$(sel('validate-result')), null, 'a verdict is shown only beside its request');
      await page.fill('#validate-subject', 'acct-8');
      assert.equal((await validateInUi(page, { valid: false, reason: 'wrong_subject' })).verdict,
        'Not accepted: issued for another subject');
      assert.equal(await page.$(sel('status-result')), null, 'validating hides the status it makes stale');
      await page.fill('#validate-subject', '');
      assert.equal((await validateInUi(page, { valid: false, reason: 'wrong_subject' })).verdict,
        'Not accepted: issued for another subject', 'a bound token needs its subject named');

      await page.fill('#validate-subject', 'acct-7');
      assert.equal((await validateInUi(page, { valid: true })).verdict, 'Valid');

      assert.equal((await lookInUi(page, 'check', 'used')).headline, 'Used');
      const usedAt = await page.getAttribute(sel('status-used-at'), 'datetime');
      const ago = (Date.now() - Date.parse(usedAt)) / 1000;
      assert.ok(ago >= -1 && ago < 30, `used ${ago} s ago`);
    }));

  test('Check status leaves a fresh token valid', () =>
    withPage(async (page, server) => {
      const posts = [];
      page.on('request', (r) => { if (r.method() === 'POST') posts.push(new URL(r.url()).pathname); });
      const token = await issueWith(page);
      for (let i = 0; i < 2; i += 1) {
        assert.equal((await lookInUi(page, 'check', 'unused')).headline, 'Unused');
      }
      assert.deepEqual(posts, ['/tokens/status', '/tokens/status']);
      assert.equal(await page.$(sel('status-purpose')), null, 'no purpose: none shown');
      assert.equal((await validateInUi(page, { valid: true })).verdict, 'Valid');
      assert.equal((await validateDirectly(server.api, token)).body.reason, 'already_used');
    }));

  test('Revoke makes the status revoked and validation refused', () =>
    withPage(async (page, server) => {
      const token = await issueWith(page);
      assert.deepEqual(await lookInUi(page, 'revoke', 'revoked'), {
        headline: 'Revoked',
        explanation: 'It can no longer be validated.',
      });
      const revokedAt = await page.getAttribute(sel('status-revoked-at'), 'datetime');
      const ago = (Date.now() - Date.parse(revokedAt)) / 1000;
      assert.ok(ago >= -1 && ago < 30, `revoked ${ago} s ago`);
      assert.equal(await page.textContent(sel('status-revoked-at')), await localTime(page, Date.parse(revokedAt) / 1000));
      await screenshot(page, 'revoked');

      assert.equal((await lookInUi(page, 'check', 'revoked')).headline, 'Revoked');
      assert.deepEqual(await validateInUi(page, { valid: false, reason: 'revoked' }), {
        verdict: 'Invalid: revoked',
        message: (await validateDirectly(server.api, token)).body.message,
      });
      assert.equal((await lookInUi(page, 'revoke', 'revoked')).headline, 'Revoked', 'revoking again changes nothing');
      assert.equal(await page.getAttribute(sel('status-revoked-at'), 'datetime'), revokedAt);

      // A used token is not revoked, and says so.
      await issueWith(page);
      assert.equal((await validateInUi(page, { valid: true })).verdict, 'Valid');
      assert.equal((await lookInUi(page, 'revoke', 'used')).headline, 'Not revoked: already used');
      // A token that is not ours.
      await page.fill('#validate-token', 'not-a-token');
      assert.equal((await lookInUi(page, 'check', 'invalid')).headline, 'Invalid: not a token');
    }));

  test('issuing with supersede revokes the earlier token of the same purpose and subject', () =>
    withPage(async (page) => {
      const issues = [];
      page.on('request', (r) => { if (r.method() === 'GET' && new URL(r.url()).pathname === '/tokens') issues.push(r.url()); });
      assert.equal(await page.isEnabled('#supersede'), false, 'needs purpose and subject');
      await page.fill('#issue-purpose', 'login');
      assert.equal(await page.isEnabled('#supersede'), false, 'needs the subject too');
      await page.fill('#issue-subject', 'acct-9');
      assert.equal(await page.isEnabled('#supersede'), true);

      const first = await issueWith(page, { supersede: true });
      assert.equal(await page.textContent(sel('superseded-note')), 'Earlier unused tokens of this purpose and subject are revoked.');
      const second = await issueWith(page);
      assert.notEqual(second, first);
      assert.deepEqual(issues.map((u) => new URL(u).search), [
        '?purpose=login&subject=acct-9&supersede=true',
        '?purpose=login&subject=acct-9&supersede=true',
      ]);

      await page.fill('#validate-token', first);
      assert.equal(await page.textContent(sel('claim-sub')), 'acct-9');
      assert.equal((await lookInUi(page, 'check', 'revoked')).headline, 'Revoked');
      await page.fill('#validate-token', second);
      assert.equal(await page.$(sel('status-result')), null, 'a status is shown only beside its token');
      assert.equal((await lookInUi(page, 'check', 'unused')).headline, 'Unused');
      assert.equal((await validateInUi(page, { valid: true })).verdict, 'Valid');

      // Clearing the subject unticks and disables the box: supersede is not sent without both.
      await page.fill('#issue-subject', '');
      assert.equal(await page.isEnabled('#supersede'), false);
      assert.equal(await page.isChecked('#supersede'), false);
      await issueWith(page);
      assert.equal(new URL(issues.at(-1)).search, '?purpose=login');
      assert.equal(await page.$(sel('superseded-note')), null);
    }));

  test('a full purpose and subject shows the server\'s 409, and supersede issues anyway', () =>
    withPage(async (page, server) => {
      const url = `${server.api}/tokens?purpose=login&subject=acct-full`;
      let refusal;
      for (let i = 0; i < 100 && !refusal; i += 1) {
        const response = await fetch(url);
        if (response.status === 409) refusal = await response.json();
        else assert.equal(response.status, 200);
      }
      assert.equal(refusal?.reason, 'too_many_outstanding');

      await page.fill('#issue-purpose', 'login');
      await page.fill('#issue-subject', 'acct-full');
      await page.click('#issue-button');
      const error = await page.waitForSelector(sel('issue-error'));
      assert.equal(await error.textContent(), `The server refused the request (HTTP 409): ${refusal.message}`);

      const token = await issueWith(page, { supersede: true });
      assert.equal(claimsOf(token).sub, 'acct-full');
      assert.equal(await page.$(sel('issue-error')), null);
    }));

  test('a purpose or subject the server would refuse is not sent', () =>
    withPage(async (page) => {
      const requests = [];
      page.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/tokens')) requests.push(r.url()); });
      const purposeRule = "Purpose must be 1 to 64 characters of a-z, 0-9, '.', '_' and '-', or blank for none.";
      await page.fill('#issue-purpose', 'Password Reset');
      await page.fill('#issue-subject', 's'.repeat(257));
      await page.click('#issue-button');
      assert.equal(await page.textContent(sel('issue-purpose-error')), purposeRule);
      assert.equal(
        await page.textContent(sel('issue-subject-error')),
        'Subject must be 1 to 256 bytes of UTF-8, or blank for none.',
      );

      for (const button of ['#validate-button', '#status-button', '#revoke-button']) {
        await page.click(button);
        assert.equal(await page.textContent(sel('validate-input-error')), 'Paste a token first.');
      }
      await page.fill('#validate-token', 'a.b.c');
      await page.fill('#validate-purpose', 'Login');
      await page.click('#validate-button');
      assert.equal(await page.textContent(sel('validate-purpose-error')), purposeRule);
      assert.equal(await page.textContent(sel('validate-input-error')), '');
      await page.waitForTimeout(300);
      assert.deepEqual(requests, [], 'nothing was sent');
    }));

  test('every button waits while a status request is in flight, and a failure is shown', () =>
    withPage(async (page, server) => {
      await issueWith(page);
      let release;
      const held = new Promise((resolve) => { release = resolve; });
      await page.route((url) => url.pathname === '/tokens/status', async (route) => {
        await held;
        await route.abort('failed');
      });
      await page.click('#status-button');
      await page.waitForSelector('#status-button[aria-busy="true"]');
      assert.equal(await page.textContent('#status-button'), 'Checking…');
      for (const button of ['#validate-button', '#status-button', '#revoke-button', '#issue-button']) {
        assert.equal(await page.isEnabled(button), button === '#issue-button', button);
      }
      release();
      const error = await page.waitForSelector(sel('status-error', '[data-action="check"]'));
      assert.match(
        await error.textContent(),
        new RegExp(`^Network error: could not reach ${server.api.replace(/\./g, '\\.')}/tokens/status \\(`),
      );
      assert.equal(await page.isEnabled('#validate-button'), true);
      assert.equal(await page.textContent('#status-button'), 'Check status');
      assert.equal((await validateInUi(page, { valid: true })).verdict, 'Valid');
      assert.equal(await page.$(sel('status-error')), null, 'validating hides the old failure');
    }));
});

describe('a service that needs an issuer key', () => {
  const KEY = 'e2e-issuer-key-e2e-issuer-key-0123456789';
  const serverOptions = { args: ['--issuer-keys', KEY] };
  const prompt = (text) => page => page.waitForSelector(`${sel('issuer-key-prompt')}:text("${text}")`);
  const needed = prompt('This service needs an issuer key to issue tokens.');
  const given = prompt('Issuer key set for this page. Send the request again.');
  const refused = prompt('That issuer key was not accepted. Check it and try again.');

  test('the page asks for the key on 401, sends it as a bearer token, also to revoke, and keeps it in memory only', () =>
    withPage(async (page) => {
      const sent = [];
      page.on('request', (r) => {
        const { pathname } = new URL(r.url());
        if (pathname === '/tokens' || pathname === '/tokens/revoke' || pathname === '/tokens/status') {
          sent.push(`${r.method()} ${pathname} ${r.headers().authorization ?? '-'}`);
        }
      });
      await page.waitForSelector(sel('api-base', '[data-source="same origin"]'));
      assert.equal(await page.$(sel('issuer-key-form')), null, 'nothing asked before the API asks');
      await page.click('#issue-button');
      await needed(page);
      assert.match(await page.textContent(sel('issue-error')), /\(HTTP 401\)/);
      assert.equal(await page.getAttribute('#issuer-key', 'type'), 'password');

      await page.fill('#issuer-key', 'not-the-key-not-the-key-not-the-key-00');
      await page.click('#issuer-key-button');
      await given(page);
      await page.click('#issue-button');
      await refused(page);
      assert.equal(await page.inputValue('#issuer-key'), '', 'the typed key leaves the page');
      await screenshot(page, 'issuer-key');

      await page.fill('#issuer-key', KEY);
      await page.click('#issuer-key-button');
      await given(page);
      const token = await issueWith(page);
      assert.match(token, JWT);
      assert.equal(await page.$(sel('issuer-key-form')), null, 'an accepted key ends the asking');

      // The key is remembered for this page: another token, then revoking it, need no typing.
      const second = await issueWith(page);
      assert.notEqual(second, token);
      assert.equal((await lookInUi(page, 'check', 'unused')).headline.length > 0, true);
      await lookInUi(page, 'revoke', 'revoked');
      assert.deepEqual(sent, [
        'GET /tokens -',
        'GET /tokens Bearer not-the-key-not-the-key-not-the-key-00',
        `GET /tokens Bearer ${KEY}`,
        `GET /tokens Bearer ${KEY}`,
        'POST /tokens/status -',
        `POST /tokens/revoke Bearer ${KEY}`,
      ]);
      await page.fill('#validate-token', token);
      assert.equal((await validateInUi(page, { valid: true })).verdict, 'Valid', 'validation needs no key');

      const stored = await page.evaluate(() => ({
        local: localStorage.length,
        session: sessionStorage.length,
        cookie: document.cookie,
        url: location.href,
        html: document.documentElement.outerHTML,
      }));
      assert.deepEqual(
        { local: stored.local, session: stored.session, cookie: stored.cookie },
        { local: 0, session: 0, cookie: '' },
      );
      assert.ok(!stored.url.includes(KEY) && !stored.html.includes(KEY), 'not in the page');

      // Memory only: a reload forgets it.
      await page.reload();
      await page.waitForSelector(sel('api-base', '[data-source="same origin"]'));
      await page.click('#issue-button');
      await needed(page);
      assert.equal(sent.at(-1), 'GET /tokens -');
    }, { serverOptions }));
});
