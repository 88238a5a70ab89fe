// Package evict holds the bounded maps behind the envelope caches, one per
// eviction policy, all behind the same small Store interface.
//
// Policies (the names are Asherah's):
//
//	"" or "simple"  unbounded map, never evicts (capacity is ignored)
//	"lru"           least recently used (github.com/hashicorp/golang-lru/v2)
//	"lfu"           least frequently used, ties broken by recency
//	"slru"          segmented LRU: a probation and a protected (80 %) segment
//	"tinylfu"       W-TinyLFU (github.com/maypok86/otter/v2)
//
// Every value that leaves a store, by eviction, Remove or Clear, is handed
// to the store's onRemove callback exactly once. Stores never replace a
// value: Add keeps the value already present. This is what lets the caches
// reference-count the secrets they hold.
package evict

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownPolicy is returned by New for a policy name it does not know.
var ErrUnknownPolicy = errors.New("unknown cache eviction policy")

// Policy names.
const (
	Simple  = "simple"
	LRU     = "lru"
	LFU     = "lfu"
	SLRU    = "slru"
	TinyLFU = "tinylfu"
	// None is a store that keeps nothing: every Add is removed at once.
	// It backs caches that are switched off.
	None = "none"
)

// Store is a map with an eviction policy. Implementations are safe for
// concurrent use.
type Store[K comparable, V any] interface {
	// Get returns the value stored under k and records the access.
	Get(k K) (V, bool)
	// Add stores v under k unless k is present. It returns the value now
	// stored under k and whether it is v. Adding may evict other entries.
	Add(k K, v V) (V, bool)
	// Remove deletes k and reports whether it was present.
	Remove(k K) bool
	// Keys returns the keys currently stored, in no particular order.
	Keys() []K
	// Len returns the number of entries (approximate for tinylfu, whose
	// evictions may lag behind an Add by a little).
	Len() int
	// Clear removes every entry.
	Clear()
	// Close clears the store and stops any goroutine it runs.
	Close()
}

// Normalize maps a policy name to its canonical form ("" is "simple",
// names are case-insensitive) and reports whether it is known.
func Normalize(policy string) (string, bool) {
	p := strings.ToLower(strings.TrimSpace(policy))
	switch p {
	case "", Simple:
		return Simple, true
	case LRU, LFU, SLRU, TinyLFU, None:
		return p, true
	}
	return policy, false
}

// New returns an empty store for policy holding at most capacity entries
// (ignored by "simple" and "none"). onRemove, which may be nil, is called
// once for every value that leaves the store; it must not call back into
// the store.
func New[K comparable, V any](policy string, capacity int, onRemove func(K, V)) (Store[K, V], error) {
	p, ok := Normalize(policy)
	if !ok {
		return nil, fmt.Errorf("%w %q (want simple, lru, lfu, slru or tinylfu)", ErrUnknownPolicy, policy)
	}
	if onRemove == nil {
		onRemove = func(K, V) {}
	}
	switch p {
	case Simple:
		return newSimple(onRemove), nil
	case None:
		return noneStore[K, V]{onRemove: onRemove}, nil
	}
	if capacity <= 0 {
		return nil, fmt.Errorf("cache eviction policy %q needs a capacity above 0, got %d", p, capacity)
	}
	switch p {
	case LRU:
		return newLRU(capacity, onRemove)
	case LFU:
		return newLFU(capacity, onRemove), nil
	case SLRU:
		return newSLRU(capacity, onRemove), nil
	default: // TinyLFU
		return newTinyLFU(capacity, onRemove)
	}
}

// noneStore keeps nothing.
type noneStore[K comparable, V any] struct{ onRemove func(K, V) }

func (noneStore[K, V]) Get(K) (V, bool) {
	var zero V
	return zero, false
}

func (s noneStore[K, V]) Add(k K, v V) (V, bool) {
	s.onRemove(k, v)
	return v, true
}

func (noneStore[K, V]) Remove(K) bool { return false }
func (noneStore[K, V]) Keys() []K     { return nil }
func (noneStore[K, V]) Len() int      { return 0 }
func (noneStore[K, V]) Clear()        {}
func (noneStore[K, V]) Close()        {}
