// Package records encrypts and decrypts streams of records (JSON Lines,
// Kafka messages) with the envelope key hierarchy: in parallel, in order,
// in bounded memory, at least once.
//
// # Model
//
//	Source ──Next──▶ workers: Transformer (Encrypter, Decrypter) ──in order──▶ Sink
//	   ▲                          │ record errors                              │
//	   │                          └──────────▶ dead-letter Sink ───────────────┤
//	   └────────────────────────── Ack, in order ◀─────────────────────────────┘
//
// A Pipeline reads records from a Source, runs a Transformer on them on a
// bounded pool of workers, and writes them to a Sink in the order the
// source produced them (so per source partition and per line). A record
// that cannot be processed (*RecordError: not an encrypted record, failed
// authentication, no partition, invalid JSON, too large) goes to the
// dead-letter sink with its reason in headers, or stops the run. Any other
// failure (metastore, KMS, sink) stops the run.
//
// # At least once
//
// The source is told of a record (Source.Ack) only after the sink, or the
// dead-letter sink, has it durably, and acknowledgements come in the order
// the source produced the records, with no gap. A Kafka source commits
// offsets only behind acknowledged records. So a crash, a kill or a
// rebalance loses no record; records written but not yet acknowledged are
// read and written again after a restart: consumers of the output must
// tolerate duplicates (deduplicate by key and content, or make their
// effects idempotent). A cancelled run drains what it has read, for a
// bounded time, before it returns.
//
// # Partitions and keys
//
// Each record's partition (tenant) comes from a PartitionSource: a fixed
// id, the record key, a header, or a JSON member (also nested, "a.b").
// Sessions come from one shared envelope.SessionFactory and stay open in a
// bounded cache, so a warm record costs no factory, metastore or KMS call.
//
// # Formats
//
// FormatDRR is Asherah's DataRowRecord as JSON, interoperable with Asherah
// clients; every record has a fresh data key. FormatBinary is enc-pipe's
// compact binary record (docs/FORMAT.md): a data key per partition reused
// for a bounded number of records, bytes and time, held in locked memory
// while in use, and associated data that binds each record to its
// partition, its key and (field mode) its field, so that a writer to the
// topic cannot move values between tenants, keys or fields unnoticed. A
// reader tells the formats apart by the first byte (DetectFormat).
//
// JSON values are checked before encryption and after decryption: one JSON
// text, no object with two members of the same name (at any depth), and no
// member on the partition path with a sibling that differs only in letter
// case. Readers disagree about which duplicate wins; refusing them keeps a
// tenant field from meaning one thing here and another downstream.
//
// # JSON Lines
//
// LineSource and LineSink read and write one record per line, of at most
// DefaultMaxLineSize bytes; binary records and other bytes travel as
// base64 (LineOptions.Base64). An Encrypter whose MaxValueSize is the
// sink's LineOptions.MaxValueSize never writes a line that a LineSource
// could not read. A line too long or not base64 is a record error of its
// own (dead-lettered or stopping the run), and reading goes on at the next
// line without keeping the long one.
//
// # Concurrency and ownership
//
// Encrypter and Decrypter are safe for concurrent use; close them after
// the last Transform. Nobody here closes what it is given: the caller
// closes sources, sinks, the session factory and the secret factory.
package records
