/**
 * Shared test setup: synthesizes the stack in memory with chosen context, using fixture build
 * outputs in a temp folder so results do not depend on whether the Rust or UI build has run.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, type CfnElement } from 'aws-cdk-lib';
import { Annotations, Template } from 'aws-cdk-lib/assertions';
import * as cxapi from 'aws-cdk-lib/cx-api';
import type { IConstruct } from 'constructs';
import { configFromContext } from '../lib/config.ts';
import { REPO_ROOT } from '../lib/contract.ts';
import { TokenServiceStack } from '../lib/stack.ts';

/** contract.json read directly, not through lib/, so a test compares the template with the file. */
export const CONTRACT = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'contract.json'), 'utf8'));

const fixtureRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'token-infra-fixture-'));

/** A stand-in for cargo lambda's bootstrap.zip (an empty but valid zip archive). */
export const FIXTURE_ZIP = path.join(fixtureRoot, 'bootstrap.zip');
fs.writeFileSync(FIXTURE_ZIP, Buffer.concat([Buffer.from('PK\x05\x06'), Buffer.alloc(18)]));

/** A stand-in for trunk's dist/, including a stale config.json that must not be deployed. */
export const FIXTURE_DIST = path.join(fixtureRoot, 'dist');
fs.mkdirSync(FIXTURE_DIST);
fs.writeFileSync(path.join(FIXTURE_DIST, 'index.html'), '<!doctype html><title>fixture</title>');
fs.writeFileSync(path.join(FIXTURE_DIST, 'frontend-1a2b3c_bg.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d]));
fs.writeFileSync(path.join(FIXTURE_DIST, 'frontend-1a2b3c.js'), 'export default 1;');
fs.writeFileSync(path.join(FIXTURE_DIST, CONTRACT.ui.configFile), '{"apiBaseUrl":"http://localhost:3000"}');

/** A path that certainly does not exist, to exercise the placeholders. */
export const MISSING = path.join(fixtureRoot, 'does-not-exist');

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

/** Synthesizes the stack with fixture build outputs, overridden by `context`. */
export function synth(context: Record<string, unknown> = {}): Synthesized {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'token-infra-out-'));
  const app = new App({
    outdir,
    // As the CLI does: records each asset's staged path in the template, so tests can read it.
    context: { [cxapi.ASSET_RESOURCE_METADATA_ENABLED_CONTEXT]: true, lambdaZip: FIXTURE_ZIP, uiDist: FIXTURE_DIST, ...context },
  });
  const stack = new TokenServiceStack(app, 'TokenService', { config: configFromContext(app.node) });
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
