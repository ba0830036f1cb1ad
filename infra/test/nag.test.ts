/**
 * cdk-nag (AWS Solutions rules) over the stack in each configuration that changes which
 * resources exist. Every finding must be fixed or acknowledged, every acknowledgement must still
 * match a finding (no stale or blanket ones), and every reason must be a sentence.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { addStack, CUSTOM_DOMAIN, testApp } from './helpers.ts';

const CONFIGURATIONS: Record<string, Record<string, unknown>> = {
  default: {},
  'waf=false, tracing, alarm e-mail, issuer keys': { waf: 'false', tracing: 'true', alarmEmail: 'ops@example.com', issuerKeys: 'true' },
  'http api': { apiType: 'http' },
  'custom domain': CUSTOM_DOMAIN,
  's3 website, throwaway table': { hosting: 's3-website', tableRemovalPolicy: 'destroy', tableDeletionProtection: 'false' },
};

interface Acknowledgement {
  readonly path: string;
  readonly id: string;
  readonly reason: string;
}

function acknowledgements(root: IConstruct): Acknowledgement[] {
  return root.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) =>
        // aws-cdk-lib stores unqualified ids as `Annotation::<id>`; cdk-nag strips that prefix too.
        Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({ path: c.node.path, id: id.replace(/^annotation::/i, ''), reason })),
      ),
  );
}

/** cdk-nag's findings with acknowledgements ignored: what the acknowledgements must cover. */
function rawFindings(checks: AwsSolutionsChecks, root: IConstruct) {
  (checks as any).isAcknowledged = () => false;
  return checks.validateScope(root).violations;
}

describe('cdk-nag AwsSolutionsChecks', () => {
  for (const [name, context] of Object.entries(CONFIGURATIONS)) {
    it(`finds nothing unacknowledged: ${name}`, () => {
      const app = testApp(context);
      addStack(app);
      const report = new AwsSolutionsChecks(app).validateScope(app);
      const open = report.violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);
      assert.deepEqual(open, []);
    });

    it(`has no acknowledgement without a matching finding: ${name}`, () => {
      const app = testApp(context);
      addStack(app);
      const findings = rawFindings(new AwsSolutionsChecks(app), app);
      assert.ok(findings.length > 0, 'the raw run sees the acknowledged findings');
      const stale = acknowledgements(app).filter(
        (ack) =>
          !findings.some(
            (f) => f.ruleName === ack.id && f.violatingResources.some((r) => r.constructPath === ack.path || r.constructPath?.startsWith(`${ack.path}/`)),
          ),
      );
      assert.deepEqual(stale.map((a) => `${a.id} at ${a.path}`), []);
    });
  }

  it('gives every acknowledgement a reason of at least one full sentence', () => {
    const app = testApp();
    addStack(app);
    const acks = acknowledgements(app);
    assert.ok(acks.length >= 10);
    for (const ack of acks) {
      assert.match(ack.reason, /^[A-Z].{40,}\.$/s, `${ack.id} at ${ack.path}: ${ack.reason}`);
      assert.match(ack.id, /^AwsSolutions-[A-Z]+\d+(\[.+\])?$/, ack.id);
    }
  });

  it('fails on a new finding: an unacknowledged rule is reported', () => {
    const app = testApp();
    const stack = addStack(app);
    // A bucket without TLS enforcement or access logs is something the checks must catch.
    new s3.Bucket(stack, 'CanaryBucket');
    const report = new AwsSolutionsChecks(app).validateScope(app);
    const canary = report.violations.filter((v) => v.violatingResources.some((r) => r.constructPath?.includes('CanaryBucket')));
    assert.ok(canary.some((v) => v.ruleName === 'AwsSolutions-S10'));
  });
});
