// Package awskms is an envelope.KMS backed by AWS KMS in one or more
// regions, wire-compatible with Asherah's AWS KMS plugin.
//
// # Envelope
//
// A system key is never sent to KMS. EncryptKey asks KMS for one fresh
// AES-256 data key (GenerateDataKey) in the preferred region, falling back
// to the other regions in their configured order, wraps the system key with
// that data key locally, and has the data key wrapped by the master key of
// every other region (KMS Encrypt, concurrently). The result is Asherah's
// JSON envelope, which becomes the system key record's Key:
//
//	{"encryptedKey":"<base64 AEAD blob>","kmsKeks":[
//	  {"region":"us-west-2","arn":"arn:aws:kms:us-west-2:…:key/…","encryptedKek":"<base64 KMS ciphertext>"},
//	  {"region":"us-east-1","arn":"arn:aws:kms:us-east-1:…:key/…","encryptedKek":"<base64 KMS ciphertext>"}]}
//
// encryptedKey is the system key sealed with AES-256-GCM under the data key,
// laid out as ciphertext || tag (16 bytes) || nonce (12 bytes), no
// associated data. kmsKeks is in configured region order (Asherah writes
// completion order; readers must not depend on it). A region whose Encrypt
// call fails is left out, as in Asherah, unless WithRequireAllRegions is
// set; the data key's own region is always present.
//
// DecryptKey tries the preferred region first and then the others, in
// configured order, and returns the first success. When every region
// fails, the error is a *RegionsError naming each region and its cause;
// it matches ErrAllRegionsFailed.
//
// # Credentials and endpoints
//
// New builds one SDK client per region from the default AWS credential
// chain (environment, shared config, SSO, web identity, container and
// instance roles), or from WithAWSConfig. WithEndpoint points one region at
// another endpoint (a local test server); WithClient supplies a client
// outright. Every call is bounded by the caller's context.
//
// # Retries and errors
//
// Each region's call goes through the AWS SDK's standard retryer before the
// next region is tried: throttling answers (ThrottlingException,
// TooManyRequestsException, LimitExceededException, ...), HTTP 5xx and
// connection errors are retried with exponential backoff and full jitter;
// other errors are not. WithRetry sets the attempts and the maximum delay
// (RetryPolicy; DefaultRetryPolicy is the SDK's 3 attempts and 20 s);
// without it the aws.Config's retry settings apply. Fewer attempts or a
// shorter maximum delay fail over to the next region sooner.
//
// When a call fails in every region, the error is one line naming each
// region, the call and its cause, such as
//
//	awskms: failed to decrypt key: all regions failed: region us-west-2: Decrypt: throttled: ThrottlingException: Rate exceeded (HTTP 400, request id …, gave up after 3 attempts); region us-east-1: …
//
// It matches ErrAllRegionsFailed, ErrThrottled when a region was throttled,
// and, through errors.As, the SDK's own error types.
//
// # Key material
//
// The data key's plaintext is moved into protected memory (securebuf) as
// soon as GenerateDataKey returns, and that memory is wiped when EncryptKey
// returns; a data key returned by KMS Decrypt is wiped right after it has
// unwrapped the system key. The unwrapped system key returned by DecryptKey
// belongs to the caller, who must wipe it.
//
// A *KMS is safe for concurrent use. It holds no resources that need
// closing.
package awskms
