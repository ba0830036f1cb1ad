/**
 * CDK entry point (`cdk.json` runs it with tsx). Options come from context; see lib/config.ts
 * and README.md. One stack per stage (`-c stage=staging`), named by `stackNameFor`. The stack is
 * environment-agnostic: `cdk deploy` targets the account and region of the current credentials.
 *
 * cdk-nag's AWS Solutions checks run on every synth: an unacknowledged finding fails `cdk synth`
 * and `cdk deploy` alike.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { configFromContext, stackNameFor } from '../lib/config.ts';
import { TokenServiceStack } from '../lib/stack.ts';

const app = new App();
const config = configFromContext(app.node);
new TokenServiceStack(app, stackNameFor(config.stage), {
  config,
  description: `One-time-token service (stage ${config.stage}): API Gateway + Rust Lambda + DynamoDB, web UI on S3/CloudFront`,
  tags: { service: 'token-service', stage: config.stage },
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
