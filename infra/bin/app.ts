/**
 * CDK entry point (`cdk.json` runs it with tsx). Options come from context; see lib/config.ts
 * and README.md. The stack is environment-agnostic: `cdk deploy` targets the account and region
 * of the current AWS credentials.
 */
import { App } from 'aws-cdk-lib';
import { configFromContext } from '../lib/config.ts';
import { TokenServiceStack } from '../lib/stack.ts';

export const STACK_NAME = 'TokenService';

const app = new App();
new TokenServiceStack(app, STACK_NAME, {
  config: configFromContext(app.node),
  description: 'One-time-token service: API Gateway + Rust Lambda + DynamoDB, web UI on S3/CloudFront',
});
app.synth();
