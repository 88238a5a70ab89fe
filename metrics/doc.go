// Package metrics is the one interface through which enc-pipe's packages
// report what they do: counters, gauges and timers, injected by the caller
// and off by default.
//
// # Model
//
//	caller ── Provider ──▶ securebuf.WithMetrics, envelope.WithMetrics,
//	                       stream.WithWriterMetrics, records.Pipeline.Metrics, ...
//	package ── Counter.Add / Gauge.Set / Timer.Observe ──▶ the caller's system
//
// A [Provider] hands out instruments by name and labels. A package asks
// for the instruments it needs once, when it is configured, and then only
// calls Add, Set or Observe on them: no lookup, lock or allocation of
// this package on a hot path. Adapters turn a Provider into a metrics
// system of the caller's choice (prommetrics: Prometheus); [Memory] keeps
// the figures in memory, for tests and end-of-run summaries.
//
// There is no global registry and nothing is registered on import: a
// package reports only to the Provider it was given and, without one, to
// [Discard], which costs a predictable branch or an empty call.
//
// # Names and labels
//
// Names are lowercase words joined by dots, in Asherah's style
// ("ael.drr.encrypt", "secret.inuse"); enc-pipe keeps Asherah's names
// where Asherah has one. A name always has the same kind and the same
// label names; only label values vary. Label values come from small
// fixed sets (an operation, an error kind, a Kafka partition number):
// never a key, a key id, a tenant's partition id or anything taken from
// the data, which could leak and would make the number of series
// unbounded.
//
// Timers measure durations and are exported as histograms in seconds;
// counters only go up (Add with a negative delta is a bug); gauges go
// both ways.
//
// # Concurrency
//
// Providers and instruments are safe for concurrent use, and their
// methods must not block: they are called from encryption workers and
// with no lock of the caller held.
package metrics
