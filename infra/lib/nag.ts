/**
 * cdk-nag acknowledgements for resources CDK itself adds to the stack (the BucketDeployment
 * handler and the bucket auto-delete provider), whose code and policies this app does not write.
 * Acknowledgements for our own resources sit next to them, in the construct that creates them.
 *
 * Each acknowledgement names one finding (cdk-nag 3 has no blanket suppressions) and says why in
 * a sentence; test/nag.test.ts fails on an unacknowledged finding and on an acknowledgement that
 * no longer matches a finding.
 */
import { type CfnElement, type Stack, Validations } from 'aws-cdk-lib';
import type * as s3 from 'aws-cdk-lib/aws-s3';

/** Acknowledges the findings on CDK's own singleton constructs in `stack`; `uiBucket` is where BucketDeployment writes. */
export function acknowledgeCdkInternals(stack: Stack, uiBucket: s3.IBucket, invalidatesCloudFront: boolean): void {
  const uiBucketId = stack.getLogicalId(uiBucket.node.defaultChild as CfnElement);
  for (const child of stack.node.children) {
    if (child.node.id.startsWith('Custom::CDKBucketDeployment')) {
      Validations.of(child).acknowledge(
        {
          id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
          reason: 'CDK\'s BucketDeployment handler writes its own logs with the managed basic execution policy; it runs only during deploys and handles no tokens.',
        },
        ...[
          'Action::s3:GetBucket*',
          'Action::s3:GetObject*',
          'Action::s3:List*',
          'Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*',
        ].map((finding) => ({
          id: `AwsSolutions-IAM5[${finding}]`,
          reason: 'CDK grants the BucketDeployment handler read access to its own bootstrap asset bucket, whose object keys are content hashes unknown until synth.',
        })),
        ...['Action::s3:Abort*', 'Action::s3:DeleteObject*', `Resource::<${uiBucketId}.Arn>/*`].map((finding) => ({
          id: `AwsSolutions-IAM5[${finding}]`,
          reason: 'CDK grants the BucketDeployment handler write access to the UI bucket only; the object keys are the UI build\'s file names, unknown until synth.',
        })),
        ...(invalidatesCloudFront
          ? [
              {
                id: 'AwsSolutions-IAM5[Resource::*]',
                reason: 'CDK grants the BucketDeployment handler cloudfront:CreateInvalidation and GetInvalidation on "*"; the invalidation targets only this stack\'s distribution.',
              },
            ]
          : []),
        {
          id: 'AwsSolutions-L1',
          reason: 'The BucketDeployment handler\'s runtime is chosen and updated by aws-cdk-lib, not by this app; upgrading aws-cdk-lib upgrades it.',
        },
      );
    }
  }
}
