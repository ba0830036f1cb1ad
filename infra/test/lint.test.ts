/**
 * cfn-lint (PyPI) over the synthesized templates of every configuration that changes which
 * resources exist. Never skipped: without cfn-lint the test fails and says how to install it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { CUSTOM_DOMAIN, synth, tempDir } from './helpers.ts';

const CONFIGURATIONS: Record<string, Record<string, unknown>> = {
  default: {},
  staging: { stage: 'staging' },
  'http-api-custom-domain': { apiType: 'http', ...CUSTOM_DOMAIN },
  'no-waf-tracing-email-issuer-keys': { waf: 'false', tracing: 'true', alarmEmail: 'ops@example.com', issuerKeys: 'true' },
  's3-website-throwaway': { hosting: 's3-website', tableRemovalPolicy: 'destroy', tableDeletionProtection: 'false' },
};

/**
 * Checks left out, each for a reason:
 * - W3005 (DependsOn already implied by a GetAtt): CDK itself adds DependsOn on a function's
 *   role next to the GetAtt of the role, in its own constructs and in lambda.Function; redundant
 *   and harmless.
 */
const IGNORED_CHECKS = ['W3005'];

/** `cfn-lint` on PATH, else the module in python3; undefined when neither runs. */
function cfnLint(): string[] | undefined {
  for (const cmd of [['cfn-lint'], ['python3', '-m', 'cfnlint']]) {
    const r = spawnSync(cmd[0], [...cmd.slice(1), '--version'], { encoding: 'utf8' });
    if (r.status === 0) return cmd;
  }
  return undefined;
}

describe('cfn-lint', () => {
  it('finds no error or warning in any configuration\'s template', { timeout: 240_000 }, () => {
    const cmd = cfnLint();
    assert.ok(cmd, 'cfn-lint is not installed: run scripts/install-tools.sh infra (pip-installs cfn-lint)');
    const dir = tempDir('lint-');
    const files = Object.entries(CONFIGURATIONS).map(([name, context]) => {
      const file = path.join(dir, `${name}.template.json`);
      fs.writeFileSync(file, JSON.stringify(synth(context).template.toJSON(), null, 1));
      return file;
    });
    const r = spawnSync(
      cmd[0],
      [...cmd.slice(1), '--regions', 'us-east-1', 'eu-west-1', '--ignore-checks', ...IGNORED_CHECKS, '--', ...files],
      { encoding: 'utf8', timeout: 230_000 },
    );
    assert.equal(r.error, undefined, String(r.error));
    // Exit status is a bit mask: 2 errors, 4 warnings, 8 informational; 0 is clean.
    assert.equal(r.status, 0, `cfn-lint found problems:\n${r.stdout}${r.stderr}`);
  });
});
