// Package envelope is envelope encryption with GoDaddy Asherah's key
// hierarchy and wire format: records written here decrypt in Asherah and
// the other way round, against the same metastore.
//
// # Key hierarchy
//
//	master key (KMS)
//	  └─ system key (SK)        _SK_{service}_{product}[_{region}]               metastore row
//	       └─ intermediate key (IK)  _IK_{partition}_{service}_{product}[_{region}]  metastore row
//	            └─ data row key (DRK)   fresh per Encrypt, wrapped inside the record
//	                 └─ the payload
//
// Every generated key is 32 random bytes. Every wrap at every level is
// AES-256-GCM with Asherah's blob layout (see NewAES256GCM):
//
//	blob = ciphertext || tag (16 bytes) || nonce (12 bytes)     no associated data, 28 bytes overhead
//
// A DataRowRecord in JSON (standard padded base64 for byte fields, Unix
// seconds for times, Revoked omitted when false, ParentKeyMeta omitted for
// system keys):
//
//	{"Key":{"Created":1795749124,"Key":"<60 bytes>","ParentKeyMeta":{"KeyId":"_IK_p_svc_prod","Created":1795749120}},"Data":"<payload+28 bytes>"}
//
// System and intermediate keys get created times truncated to
// CryptoPolicy.CreateDatePrecision (a minute by default) so that
// concurrent creators collide on one metastore row; data row keys get the
// current second.
//
// # Key ids
//
// Ids are Asherah's plain concatenation with "_". Because "_" is both the
// separator and a legal character of partition, service and product,
// different triples can give the same id: partition "a_b" with service "c"
// and partition "a" with service "b_c" both give _IK_a_b_c_{product}.
// Such ids name the same key, so the two partitions share their key and
// can decrypt each other's records. Asherah behaves the same and the ids
// are kept for compatibility; keep "_" out of service and product names
// (or out of partition ids) where that matters. With a region suffix,
// Session.Decrypt accepts the session's own id, the unsuffixed id, and
// the unsuffixed id followed by "_" and a region (IsRegionSuffix), and
// nothing looser.
//
// # Sessions, caches and rotation
//
// A SessionFactory (one per service and product) hands out a Session per
// partition. Decrypted system and intermediate keys are cached in
// protected memory (package securebuf) according to the CryptoPolicy,
// reference counted so that eviction never frees a key an operation is
// using. Keys are rotated inline: a write whose latest key is expired or
// revoked creates a new one first. Cached keys are re-read from the
// metastore every RevokeCheckInterval; when the stored latest key differs
// from the cached one (revoked, or replaced by another process) the cache
// switches, which fixes Asherah's habit of writing with a revoked cached
// key. Loads of one key are coalesced; there is no lock held across
// metastore or KMS calls, and none shared by different partitions' writes
// beyond short map locks.
//
// When two writers create the same key at once, the metastore's
// insert-if-absent lets one win (ErrKeyExists for the others), and the
// losers read the winner's key with LoadLatest. Any other Store error is
// returned.
//
// # Memory
//
// System and intermediate keys live in securebuf Secrets: locked, excluded
// from core dumps, inaccessible except inside WithBytes. Data row keys live
// in securebuf scratch slots (locked, excluded from dumps, wiped on
// release).
//
// AES-GCM needs the key expanded into round keys, and the standard library
// builds them on the Go heap. WithKeyAccess chooses where a cached
// intermediate key's schedule lives. With KeyAccessCached (the default)
// each cached intermediate key has one cipher, built when the key is
// loaded or created and wiped when the key leaves the cache and its last
// user is done, so a warm Encrypt or Decrypt opens no secret (no system
// call) and the heap holds one schedule per live intermediate key. With
// KeyAccessStrict every record opens the key (two mprotect calls with the
// default securebuf factory, two WRPKRU instructions with
// securebuf.AccessPKey) and builds the schedule inside the call. Every
// other schedule (system keys, data row keys, the static KMS's master key)
// is built per call and wiped before the call returns. docs/THREAT-MODEL.md
// says what is left on the heap in each mode, and docs/PERFORMANCE.md what
// each costs.
//
// # Errors
//
// Errors are sentinels (ErrDecrypt, ErrPartitionMismatch, ErrInvalidRecord,
// ErrNotFound, ErrClosed, ErrInvalidConfig, ...) or *KeyError, all
// usable with errors.Is and errors.As. ErrNotFound is the one "not found":
// Metastore.Load returns it, and a session returns it wrapped in a
// *KeyError that names the missing key. The metastore contract also has
// ErrKeyExists (types.go). Every metastore and KMS call
// receives the caller's context.
//
// # Concurrency
//
// SessionFactory and Session are safe for concurrent use. Close sessions
// before their factory; the factory never closes the metastore or the KMS.
package envelope
