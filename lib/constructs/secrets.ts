import { RemovalPolicy, SecretValue, Validations } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

/**
 * Fields of the Twilio credentials secret; the operator fills them after the first deploy. `authToken` (the
 * account's auth token) is what Twilio signs status callbacks with; without it every callback is refused (403).
 * Adding a field changes the secret's template value, and CloudFormation then overwrites whatever the
 * operator put: add fields only together with a new stack, or tell operators to put the secret again.
 */
export const TWILIO_SECRET_FIELDS = ['accountSid', 'apiKeySid', 'apiKeySecret', 'twimlAppSid', 'callerId', 'authToken'] as const;

/** Version label of the first token-encryption key, and the JSON field its generated seed lives in. */
export const FIRST_KEY_VERSION = 'v1';
export const generatedKeyField = (version: string): string => `k_${version}`;

export interface SecretsProps {
  /** Create the secret for the legacy Supabase HS256 JWT secret. @default false */
  readonly legacyJwtSecret?: boolean;
}

/**
 * Every secret of the service, each encrypted with one customer-managed key. Functions get the
 * secrets' ARNs (in environment variables) and read the values at run time; values never appear in
 * the template, environment, parameters or outputs.
 *
 * Secrets are retained on stack deletion: they hold operator-entered credentials and the keys that
 * decrypt stored sessions.
 */
export class Secrets extends Construct {
  /** Encrypts all secrets below. */
  public readonly key: kms.Key;
  /**
   * Twilio credentials as JSON: `{"accountSid","apiKeySid","apiKeySecret","twimlAppSid","callerId","authToken"}`.
   * Created with every field empty; until the operator puts real values, the Lambdas must answer 503.
   */
  public readonly twilio: secretsmanager.Secret;
  /**
   * Token-encryption keys as JSON. Generated at deploy as `{"current":"v1","k_v1":"<64 random letters
   * and digits>"}`, because Secrets Manager cannot generate base64 of 32 random bytes. Contract with the
   * Lambdas: version `vN` is `keys.vN` (base64 of exactly 32 bytes, for keys an operator adds) or else
   * `k_vN` (a generated string, turned into the 32-byte AES key with SHA-256 of its UTF-8 bytes);
   * `current` names the version used to encrypt, older versions still decrypt.
   */
  public readonly encryptionKeys: secretsmanager.Secret;
  /**
   * The legacy Supabase JWT secret (plain string), only when `legacyJwtSecret` is set. Created with a
   * random placeholder nobody knows, so HS256 tokens fail verification (closed) until the operator
   * puts the project's real JWT secret.
   */
  public readonly legacyJwt: secretsmanager.Secret | undefined;
  /** The usage-plan API key value (plain string); the authorizer returns it as `usageIdentifierKey`. */
  public readonly usageKey: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: SecretsProps = {}) {
    super(scope, id);

    this.key = new kms.Key(this, 'Key', {
      description: 'Encrypts the voice-token service secrets',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.twilio = new secretsmanager.Secret(this, 'Twilio', {
      description: 'Twilio credentials (JSON). Fill after deploy with aws secretsmanager put-secret-value; see the NextStep output.',
      encryptionKey: this.key,
      // Empty placeholders, not secrets. CloudFormation writes this value only when the template's value
      // changes, so the operator's put-secret-value survives later deploys as long as these stay as they are.
      secretObjectValue: Object.fromEntries(TWILIO_SECRET_FIELDS.map((f) => [f, SecretValue.unsafePlainText('')])),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledgeManualRotation(
      this.twilio,
      'Twilio API keys cannot be created by a rotation Lambda without a Twilio console or account-level API step; rotation is a runbook step (create a new API key in Twilio, put-secret-value, revoke the old key).',
    );

    this.encryptionKeys = new secretsmanager.Secret(this, 'EncryptionKeys', {
      description: 'Token-encryption keys (JSON, versioned). Add a version and move "current" to rotate.',
      encryptionKey: this.key,
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ current: FIRST_KEY_VERSION }),
        generateStringKey: generatedKeyField(FIRST_KEY_VERSION),
        passwordLength: 64,
        excludePunctuation: true,
        includeSpace: false,
      },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledgeManualRotation(
      this.encryptionKeys,
      'Rotation adds a new key version and moves "current" while older versions keep decrypting live sessions; a Secrets Manager rotation Lambda replacing the value would make stored sessions unreadable.',
    );

    if (props.legacyJwtSecret) {
      this.legacyJwt = new secretsmanager.Secret(this, 'LegacyJwt', {
        description: 'Legacy Supabase JWT secret (HS256). Replace the placeholder with the project JWT secret after deploy.',
        encryptionKey: this.key,
        generateSecretString: { passwordLength: 64, excludePunctuation: true, includeSpace: false },
        removalPolicy: RemovalPolicy.RETAIN,
      });
      acknowledgeManualRotation(
        this.legacyJwt,
        'The legacy JWT secret is issued by Supabase; it changes only when the Supabase project rotates it, after which the operator copies it here.',
      );
    }

    this.usageKey = new secretsmanager.Secret(this, 'UsageKey', {
      description: 'Value of the API Gateway usage-plan API key, returned by the authorizer (browsers never hold it).',
      encryptionKey: this.key,
      generateSecretString: { passwordLength: 40, excludePunctuation: true, includeSpace: false },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledgeManualRotation(
      this.usageKey,
      'Not a credential on its own: the authorizer hands it to API Gateway only for a valid Supabase session, for usage-plan accounting. The API key resource copies the value at deploy time (dynamic reference), so a rotation Lambda would desynchronise the two.',
    );
  }
}

function acknowledgeManualRotation(secret: secretsmanager.Secret, reason: string): void {
  Validations.of(secret).acknowledge({ id: 'AwsSolutions-SMG4', reason });
}
