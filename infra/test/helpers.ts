/**
 * Shared test setup: synthesizes the stack in memory with chosen context, using fixture build
 * outputs in a temp folder so results do not depend on whether the Rust or UI build has run.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, type CfnElement, type StackProps } from 'aws-cdk-lib';
import { Annotations, Template } from 'aws-cdk-lib/assertions';
import * as cxapi from 'aws-cdk-lib/cx-api';
import type { IConstruct } from 'constructs';
import { configFromContext, stackNameFor } from '../lib/config.ts';
import { INFRA_ROOT, REPO_ROOT } from '../lib/contract.ts';
import { TokenServiceStack } from '../lib/stack.ts';

/** contract.json read directly, not through lib/, so a test compares the template with the file. */
export const CONTRACT = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'contract.json'), 'utf8'));

/**
 * Every folder a test makes lives under one per-process folder, removed when the process exits
 * (`node --test` runs each test file in its own process). Each synthesized App stages its
 * assets (about 20 MB), so folders left behind would fill the disk over a few runs.
 */
const TMP_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'token-infra-test-'));
process.on('exit', () => fs.rmSync(TMP_ROOT, { recursive: true, force: true }));

/** A new empty folder named `prefix` plus a random suffix, removed with the process. */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(TMP_ROOT, prefix));
}

const fixtureRoot = tempDir('fixture-');

/** A stand-in for cargo lambda's bootstrap.zip (an empty but valid zip archive). */
export const FIXTURE_ZIP = path.join(fixtureRoot, 'bootstrap.zip');
fs.writeFileSync(FIXTURE_ZIP, Buffer.concat([Buffer.from('PK\x05\x06'), Buffer.alloc(18)]));

/** Hashed names as trunk 0.21 writes them (`{stem}-{seahash as hex}`). */
export const FIXTURE_WASM = 'frontend-9f3c2a1b7e6d5c40_bg.wasm';
export const FIXTURE_JS = 'frontend-9f3c2a1b7e6d5c40.js';
export const FIXTURE_CSS = 'style-3e8a7d6c5b4a3921.css';

/**
 * The inline loader trunk 0.21 injects in place of `<link data-trunk rel="rust">` (its
 * `default_initializer` with wasm-bindgen's `init_with_object`), byte for byte, leading and
 * trailing newlines included.
 */
export const FIXTURE_LOADER =
  `\nimport init, * as bindings from '/${FIXTURE_JS}';\nconst wasm = await init({ module_or_path: '/${FIXTURE_WASM}' });\n\n` +
  `\nwindow.wasmBindings = bindings;\n\n\ndispatchEvent(new CustomEvent("TrunkApplicationStarted", {detail: {wasm}}));\n\n`;

/** A stand-in for trunk's dist/, including a stale config.json that must not be deployed. */
export const FIXTURE_DIST = path.join(fixtureRoot, 'dist');
fs.mkdirSync(FIXTURE_DIST);
fs.writeFileSync(
  path.join(FIXTURE_DIST, 'index.html'),
  '<!doctype html><html><head><title>fixture</title>' +
    `<link rel="modulepreload" href="/${FIXTURE_JS}" crossorigin="anonymous" integrity="sha384-x">` +
    `<link rel="stylesheet" href="/${FIXTURE_CSS}" integrity="sha384-y"/>` +
    `<script type="module">${FIXTURE_LOADER}</script></head><body></body></html>`,
);
fs.writeFileSync(path.join(FIXTURE_DIST, FIXTURE_WASM), Buffer.from([0, 0x61, 0x73, 0x6d]));
fs.writeFileSync(path.join(FIXTURE_DIST, FIXTURE_JS), 'export default 1;');
fs.writeFileSync(path.join(FIXTURE_DIST, FIXTURE_CSS), 'body{}');
fs.writeFileSync(path.join(FIXTURE_DIST, 'favicon.ico'), Buffer.from([0, 0, 1, 0]));
fs.writeFileSync(path.join(FIXTURE_DIST, CONTRACT.ui.configFile), '{"apiBaseUrl":"http://localhost:3000"}');

/** cdk.json's context (the recommended feature flags among it), as the CLI would pass it. */
export const CDK_JSON_CONTEXT: Record<string, unknown> = JSON.parse(fs.readFileSync(path.join(INFRA_ROOT, 'cdk.json'), 'utf8')).context;

/** A path that certainly does not exist, to exercise the placeholders. */
export const MISSING = path.join(fixtureRoot, 'does-not-exist');

/** A certificate ARN of the right shape (us-east-1) for the custom-domain option. */
export const CERTIFICATE_ARN = 'arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012';
export const CUSTOM_DOMAIN = { domainName: 'tokens.example.com', certificateArn: CERTIFICATE_ARN };

/** The resources of `type` as [logical id, resource] pairs. */
export function resourcesOf(template: Template, type: string): [string, any][] {
  return Object.entries(template.findResources(type));
}

export interface Synthesized {
  readonly stack: TokenServiceStack;
  readonly template: Template;
  readonly annotations: Annotations;
  /** Cloud assembly folder (staged assets live here). */
  readonly outdir: string;
  /** CloudFormation form of a CDK value, e.g. `{ Ref: 'Table1234' }`, for exact comparisons. */
  resolve(value: unknown): unknown;
  logicalId(construct: IConstruct): string;
}

/** An App as `bin/app.ts` gets it from the CLI: cdk.json's context, fixture build outputs, `context`. */
export function testApp(context: Record<string, unknown> = {}): App {
  return new App({
    outdir: tempDir('out-'),
    context: {
      ...CDK_JSON_CONTEXT,
      // As the CLI does: records each asset's staged path in the template, so tests can read it.
      [cxapi.ASSET_RESOURCE_METADATA_ENABLED_CONTEXT]: true,
      lambdaZip: FIXTURE_ZIP,
      uiDist: FIXTURE_DIST,
      ...context,
    },
  });
}

/** Adds the stack `bin/app.ts` would add to `app`. */
export function addStack(app: App, props: Partial<StackProps> = {}): TokenServiceStack {
  const config = configFromContext(app.node);
  return new TokenServiceStack(app, stackNameFor(config.stage), { config, ...props });
}

const synthesized = new Map<string, Synthesized>();

/**
 * Synthesizes the stack with fixture build outputs, overridden by `context`. Results are shared
 * between tests with the same context (synthesis takes a second or two, and no test mutates one).
 */
export function synth(context: Record<string, unknown> = {}): Synthesized {
  const key = JSON.stringify(context);
  const cached = synthesized.get(key);
  if (cached) return cached;
  const result = synthUncached(context);
  synthesized.set(key, result);
  return result;
}

function synthUncached(context: Record<string, unknown>): Synthesized {
  const app = testApp(context);
  const outdir = app.outdir;
  const stack = addStack(app);
  const template = Template.fromStack(stack);
  return {
    stack,
    template,
    annotations: Annotations.fromStack(stack),
    outdir,
    resolve: (value) => stack.resolve(value),
    logicalId: (construct) => stack.getLogicalId(construct.node.defaultChild as CfnElement),
  };
}

/** The only resource of `type` (fails if there are none or several). */
export function only(template: Template, type: string): { id: string; props: any; resource: any } {
  const found = Object.entries(template.findResources(type));
  if (found.length !== 1) throw new Error(`expected exactly one ${type}, found ${found.length}`);
  const [id, resource] = found[0];
  return { id, props: resource.Properties ?? {}, resource };
}
