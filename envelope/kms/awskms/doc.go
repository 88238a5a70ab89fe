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
// outright. Each region's call goes through the SDK's retryer (by default
// 3 attempts with exponential backoff) before the next region is tried; to
// fail over sooner, lower RetryMaxAttempts in the aws.Config given to
// WithAWSConfig. Every call is also bounded by the caller's context.
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
