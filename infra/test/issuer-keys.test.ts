/**
 * `issuerKeys=true`: a generated issuer-keys secret, readable by the function alone, named to the
 * function under contract.json's `env.issuerKeysSecretArn` and to the operator by a stack output;
 * without the option (the default) none of it exists and issuing stays open.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONTRACT, only, resourcesOf, synth } from './helpers.ts';

/** The statements of the token function's role policy. */
function functionStatements(s: ReturnType<typeof synth>): any[] {
  const roleId = s.logicalId(s.stack.api.function.role!);
  return (Object.values(s.template.findResources('AWS::IAM::Policy')) as any[])
    .filter((p) => p.Properties.Roles.some((r: any) => r.Ref === roleId))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

function functionEnvironment(s: ReturnType<typeof synth>): Record<string, unknown> {
  return s.template.toJSON().Resources[s.logicalId(s.stack.api.function)].Properties.Environment.Variables;
}

/** The REST API's OPTIONS methods (API Gateway answers CORS preflight with them). */
function preflightsOf(s: ReturnType<typeof synth>): any[] {
  const preflights = (Object.values(s.template.findResources('AWS::ApiGateway::Method')) as any[]).filter(
    (m) => m.Properties.HttpMethod === 'OPTIONS',
  );
  assert.equal(preflights.length, 6);
  return preflights;
}

describe('issuer keys', () => {
  it('are off by default: one secret (the signing key), no env var, no output, no Authorization in CORS', () => {
    const s = synth();
    assert.equal(s.stack.storage.issuerKeys, undefined);
    assert.deepEqual(resourcesOf(s.template, 'AWS::SecretsManager::Secret').map(([id]) => id), [s.logicalId(s.stack.storage.signingKey)]);
    assert.ok(!(CONTRACT.env.issuerKeysSecretArn in functionEnvironment(s)));
    assert.equal(s.template.toJSON().Outputs.IssuerKeysSecretArn, undefined);
    const secretStatements = functionStatements(s).filter((st) => JSON.stringify(st.Action).includes('secretsmanager:'));
    assert.deepEqual(secretStatements, [
      { Action: 'secretsmanager:GetSecretValue', Effect: 'Allow', Resource: { Ref: s.logicalId(s.stack.storage.signingKey) } },
    ]);
    for (const m of preflightsOf(s)) {
      const params = m.Properties.Integration.IntegrationResponses[0].ResponseParameters;
      assert.equal(params['method.response.header.Access-Control-Allow-Headers'], "'Content-Type,Idempotency-Key'");
    }
  });

  it('generate a 64-character alphanumeric key at deploy time with issuerKeys=true', () => {
    const s = synth({ issuerKeys: 'true' });
    const secret = s.template.toJSON().Resources[s.logicalId(s.stack.storage.issuerKeys!)];
    assert.equal(secret.Type, 'AWS::SecretsManager::Secret');
    assert.deepEqual(secret.Properties.GenerateSecretString, {
      ExcludePunctuation: true,
      IncludeSpace: false,
      PasswordLength: 64,
      RequireEachIncludedType: true,
    });
    assert.equal(secret.Properties.SecretString, undefined);
    assert.equal(resourcesOf(s.template, 'AWS::SecretsManager::Secret').length, 2);
  });

  it('give the function the secret ARN under contract.json env.issuerKeysSecretArn', () => {
    const s = synth({ issuerKeys: 'true' });
    assert.equal(CONTRACT.env.issuerKeysSecretArn, 'TOKEN_SERVICE_ISSUER_KEYS_SECRET_ARN');
    assert.deepEqual(functionEnvironment(s)[CONTRACT.env.issuerKeysSecretArn], { Ref: s.logicalId(s.stack.storage.issuerKeys!) });
    assert.deepEqual(functionEnvironment(s)[CONTRACT.env.secretArn], { Ref: s.logicalId(s.stack.storage.signingKey) });
  });

  it('let the function only GetSecretValue on the issuer-keys secret, beside the signing key', () => {
    const s = synth({ issuerKeys: 'true' });
    const issuer = { Ref: s.logicalId(s.stack.storage.issuerKeys!) };
    const signing = { Ref: s.logicalId(s.stack.storage.signingKey) };
    const onIssuerKeys = functionStatements(s).filter((st) => JSON.stringify(st.Resource).includes(JSON.stringify(issuer)));
    // @aws-cdk/aws-iam:minimizePolicies merges the two read statements into one, resources sorted.
    assert.deepEqual(onIssuerKeys, [{ Action: 'secretsmanager:GetSecretValue', Effect: 'Allow', Resource: [issuer, signing] }]);
    // No resource policy or other principal is given the secret.
    assert.deepEqual(resourcesOf(s.template, 'AWS::SecretsManager::ResourcePolicy'), []);
  });

  it('name the secret in the IssuerKeysSecretArn output, with the command that reads the key', () => {
    const s = synth({ issuerKeys: 'true' });
    const output = s.template.toJSON().Outputs.IssuerKeysSecretArn;
    assert.deepEqual(output.Value, { Ref: s.logicalId(s.stack.storage.issuerKeys!) });
    assert.match(output.Description, /aws secretsmanager get-secret-value --secret-id/);
  });

  it('let the browser send Authorization cross-origin, on the REST and the HTTP API', () => {
    const rest = synth({ issuerKeys: 'true' });
    for (const m of preflightsOf(rest)) {
      const params = m.Properties.Integration.IntegrationResponses[0].ResponseParameters;
      assert.equal(params['method.response.header.Access-Control-Allow-Headers'], "'Content-Type,Idempotency-Key,Authorization'");
    }
    const http = synth({ apiType: 'http', issuerKeys: 'true' });
    assert.deepEqual(only(http.template, 'AWS::ApiGatewayV2::Api').props.CorsConfiguration.AllowHeaders, [
      'Content-Type',
      'Idempotency-Key',
      'Authorization',
    ]);
    assert.deepEqual(functionEnvironment(http)[CONTRACT.env.issuerKeysSecretArn], { Ref: http.logicalId(http.stack.storage.issuerKeys!) });
  });

  it('take true or false, as -c passes them, and refuse anything else', () => {
    assert.equal(synth({ issuerKeys: 'false' }).stack.storage.issuerKeys, undefined);
    assert.throws(() => synth({ issuerKeys: 'yes' }), /^Error: context issuerKeys=yes: expected true or false$/);
    assert.throws(() => synth({ issuerKeys: '1' }), /context issuerKeys=1: expected true or false/);
  });
});
