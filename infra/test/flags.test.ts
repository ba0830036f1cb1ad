import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as cxapi from 'aws-cdk-lib/cx-api';
import { CDK_JSON_CONTEXT } from './helpers.ts';

/**
 * Where cdk.json deliberately departs from CDK's recommended value, and why. Anything else must
 * match, so an aws-cdk-lib upgrade that adds a recommended flag fails here until it is reviewed
 * and added to cdk.json.
 */
const DEVIATIONS: Record<string, { value: unknown; why: string }> = {
  '@aws-cdk/core:enableAdditionalMetadataCollection': {
    value: false,
    why: 'it only widens the usage data CDK reports to AWS (the project already sets cli-telemetry false); it changes no resource',
  },
};

describe('feature flags in cdk.json', () => {
  it("set every flag CDK currently recommends, to the recommended value, apart from the listed deviations", () => {
    const recommended = cxapi.CURRENTLY_RECOMMENDED_FLAGS as Record<string, unknown>;
    assert.ok(Object.keys(recommended).length > 50);
    const wrong = Object.entries(recommended)
      .filter(([flag]) => !(flag in DEVIATIONS))
      .filter(([flag, value]) => JSON.stringify(CDK_JSON_CONTEXT[flag]) !== JSON.stringify(value))
      .map(([flag, value]) => `${flag}: cdk.json has ${JSON.stringify(CDK_JSON_CONTEXT[flag])}, recommended ${JSON.stringify(value)}`);
    assert.deepEqual(wrong, []);
    for (const [flag, { value }] of Object.entries(DEVIATIONS)) {
      assert.ok(flag in recommended, `${flag} is still a recommended flag`);
      assert.equal(CDK_JSON_CONTEXT[flag], value, flag);
    }
  });

  it('set no flag that this aws-cdk-lib no longer knows or has expired', () => {
    const known = new Set(Object.keys(cxapi.FLAGS));
    const unknown = Object.keys(CDK_JSON_CONTEXT).filter((k) => k.startsWith('@aws-cdk') && !known.has(k));
    assert.deepEqual(unknown, []);
    const expired = Object.keys(CDK_JSON_CONTEXT).filter((k) => (cxapi.CURRENT_VERSION_EXPIRED_FLAGS as string[]).includes(k));
    assert.deepEqual(expired, []);
  });
});
