// Package dynamostore is an envelope.Metastore on Amazon DynamoDB, using
// Asherah's table and item layout, so Asherah and enc-pipe can share keys.
//
// # Table and items
//
// The table (default "EncryptionKey", see CreateTable) has the hash key Id
// (S) and the range key Created (N, Unix seconds). One item per key:
//
//	{"Id":        S "_IK_partition_svc_prod",
//	 "Created":   N "1700000000",
//	 "KeyRecord": M {"Revoked":       BOOL true          (omitted when false),
//	                 "Created":       N "1700000000",
//	                 "Key":           S "<standard base64 of the wrapped key>",
//	                 "ParentKeyMeta": M {"KeyId": S "_SK_svc_prod", "Created": N "1700000000"}
//	                                                      (omitted for system keys)}}
//
// Store is a conditional PutItem (attribute_not_exists(Id)), so exactly one
// of several concurrent writers of the same (Id, Created) succeeds; the
// others get envelope.ErrKeyExists. Load is a consistent GetItem; LoadLatest
// a consistent Query on Id, newest first, limit 1.
//
// # Global tables and regions
//
// For a DynamoDB global table, give the store the client of the region it
// runs in (the preferred region) and, with WithReplica, clients of the
// other replica regions. Writes go to the preferred region only. Reads go
// to the preferred region and fail over to the replicas in the order given
// when it fails; when every region fails, the error joins each region's
// cause (on one line; errors.Is and errors.As see every cause). A Load that finds nothing in the preferred region also asks the
// replicas, since the key may not have replicated yet.
//
// WithRegionSuffix makes the store report its region through
// GetRegionSuffix, which makes the session factory append the region to
// system and intermediate key ids (as Asherah does), so that writers in
// different regions never write the same item of a global table.
//
// # Errors
//
// Absent keys are envelope.ErrNotFound, duplicates envelope.ErrKeyExists,
// and items that do not have the layout above wrap ErrMalformedItem. Every
// other error is the SDK's, wrapped with the region and operation; errors.As
// finds the SDK's types through it.
//
// A *Store is safe for concurrent use and holds no resources that need
// closing. Every call takes the caller's context.
package dynamostore
