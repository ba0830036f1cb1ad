/**
 * The names this app shares with the Rust backend and the web UI, read from the repository's
 * `contract.json` (the single source of truth: the backend's tests read the same file).
 *
 * Never copy a string from there into this package: import `contract` instead, so that a rename
 * on either side fails a test rather than a deployment.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import contractJson from '../../contract.json' with { type: 'json' };

/** Shape of `contract.json` as far as the infrastructure uses it. */
export interface Contract {
  readonly table: { readonly defaultName: string; readonly partitionKey: string; readonly ttlAttribute: string };
  readonly env: { readonly tableName: string; readonly secretArn: string; readonly allowedOrigins: string };
  readonly lambda: { readonly binary: string; readonly zip: string };
  readonly ui: { readonly dist: string; readonly configFile: string; readonly apiBaseUrlField: string };
}

export const contract: Contract = contractJson;

/** Absolute path of the repository root (the folder holding `contract.json`). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Absolute path of this CDK package (`infra/`). */
export const INFRA_ROOT = path.join(REPO_ROOT, 'infra');
