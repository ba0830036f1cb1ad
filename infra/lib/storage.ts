/**
 * Where tokens and keys live: a DynamoDB table holding one item per issued token, a Secrets
 * Manager secret holding the signing key and, with `issuerKeys=true`, one holding the issuer
 * keys. Nothing here grants access; the API construct grants exactly what the Lambda needs.
 */
import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { contract } from './contract.ts';

/** Length of the generated signing key, in characters of [A-Za-z0-9]: 64 * log2(62) ≈ 381 bits. */
export const SIGNING_KEY_LENGTH = 64;
/**
 * Length of the generated issuer key, in characters of [A-Za-z0-9]: the backend refuses keys
 * shorter than 32 bytes, and this alphabet needs no escaping in an `Authorization` header.
 */
export const ISSUER_KEY_LENGTH = 64;

export interface TokenStorageProps {
  /** What `cdk destroy` does with the table (and its tokens). */
  readonly tableRemovalPolicy: RemovalPolicy;
  /**
   * DynamoDB deletion protection: while on, no one (CloudFormation included) can delete the
   * table until it is turned off. Off only for throwaway stages deployed with
   * `tableRemovalPolicy=destroy`.
   */
  readonly deletionProtection: boolean;
  /** Whether to create the issuer-keys secret ({@link TokenStorage.issuerKeys}). */
  readonly issuerKeys: boolean;
}

/** The token table and the signing-key secret. */
export class TokenStorage extends Construct {
  /**
   * On-demand table keyed by `contract.table.partitionKey` (string). DynamoDB TTL deletes items
   * once `contract.table.ttlAttribute` (epoch seconds) has passed; that is clean-up only, since
   * TTL deletion can lag by days: the backend checks expiry itself. The physical name is left to
   * CloudFormation so that a retained table never blocks a redeploy; the Lambda gets it from
   * its environment.
   */
  readonly table: dynamodb.Table;

  /**
   * The token signing key. Secrets Manager generates it when the stack is first deployed, so it
   * appears in no template, asset or source file. The Lambda gets only the secret's ARN.
   */
  readonly signingKey: secretsmanager.Secret;

  /**
   * With `issuerKeys=true`: the keys that issuing, revoking and the metrics need as
   * `Authorization: Bearer <key>`. Secrets Manager generates one key at the first deploy; its
   * string may later hold several, one a line or comma-separated (the backend's format, read
   * once per cold start). Undefined when issuing is open.
   */
  readonly issuerKeys?: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: TokenStorageProps) {
    super(scope, id);

    this.table = new dynamodb.Table(this, contract.table.defaultName, {
      partitionKey: { name: contract.table.partitionKey, type: dynamodb.AttributeType.STRING },
      timeToLiveAttribute: contract.table.ttlAttribute,
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: props.tableRemovalPolicy,
      deletionProtection: props.deletionProtection,
    });

    this.signingKey = new secretsmanager.Secret(this, 'SigningKey', {
      description: 'One-time-token service: token signing key (generated at deploy time)',
      generateSecretString: {
        passwordLength: SIGNING_KEY_LENGTH,
        excludePunctuation: true,
        includeSpace: false,
        requireEachIncludedType: true,
      },
    });
    Validations.of(this.signingKey).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason: 'Rotation is a manual, planned step (README, rotating the signing key: tokens carry a kid and the Lambda verifies with AWSCURRENT and AWSPREVIOUS), and automatic rotation would need a rotation Lambda this stack does not have.',
    });

    if (props.issuerKeys) {
      this.issuerKeys = new secretsmanager.Secret(this, 'IssuerKeys', {
        description: 'One-time-token service: issuer keys for Authorization: Bearer (generated at deploy time)',
        generateSecretString: {
          passwordLength: ISSUER_KEY_LENGTH,
          excludePunctuation: true,
          includeSpace: false,
          requireEachIncludedType: true,
        },
      });
      Validations.of(this.issuerKeys).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason: 'Issuer keys are handed to people, so rotating them is a manual step (infra/README: put old and new keys, hand out the new one, then drop the old), and automatic rotation would need a rotation Lambda.',
      });
    }
  }
}
