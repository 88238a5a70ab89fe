package evict

import (
	"github.com/maypok86/otter/v2"
)

// tinyLFUStore is otter's W-TinyLFU cache. Lookups are lock-free. Otter
// reports every deletion (eviction, invalidation) through
// OnAtomicDeletion; values are never replaced because Add uses
// SetIfAbsent. Maintenance runs on the calling goroutine (a synchronous
// Executor), so the store starts no goroutines of its own.
type tinyLFUStore[K comparable, V any] struct {
	c *otter.Cache[K, V]
}

func newTinyLFU[K comparable, V any](capacity int, onRemove func(K, V)) (*tinyLFUStore[K, V], error) {
	c, err := otter.New(&otter.Options[K, V]{
		MaximumSize: capacity,
		OnAtomicDeletion: func(e otter.DeletionEvent[K, V]) {
			if e.Cause != otter.CauseReplacement {
				onRemove(e.Key, e.Value)
			}
		},
		Executor: func(fn func()) { fn() },
	})
	if err != nil {
		return nil, err
	}
	return &tinyLFUStore[K, V]{c: c}, nil
}

func (s *tinyLFUStore[K, V]) Get(k K) (V, bool) { return s.c.GetIfPresent(k) }

func (s *tinyLFUStore[K, V]) Add(k K, v V) (V, bool) { return s.c.SetIfAbsent(k, v) }

func (s *tinyLFUStore[K, V]) Remove(k K) bool {
	_, ok := s.c.Invalidate(k)
	return ok
}

func (s *tinyLFUStore[K, V]) Keys() []K {
	var keys []K
	for k := range s.c.Keys() {
		keys = append(keys, k)
	}
	return keys
}

func (s *tinyLFUStore[K, V]) Len() int {
	s.c.CleanUp()
	return s.c.EstimatedSize()
}

func (s *tinyLFUStore[K, V]) Clear() { s.c.InvalidateAll() }

func (s *tinyLFUStore[K, V]) Close() {
	s.c.InvalidateAll()
	s.c.StopAllGoroutines()
}
