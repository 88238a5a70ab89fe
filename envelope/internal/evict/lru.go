package evict

import lru "github.com/hashicorp/golang-lru/v2"

// lruStore is hashicorp's thread-safe LRU. It calls its eviction callback
// outside its lock, for evictions, removals and purges alike.
type lruStore[K comparable, V any] struct {
	c *lru.Cache[K, V]
}

func newLRU[K comparable, V any](capacity int, onRemove func(K, V)) (*lruStore[K, V], error) {
	c, err := lru.NewWithEvict(capacity, onRemove)
	if err != nil {
		return nil, err
	}
	return &lruStore[K, V]{c: c}, nil
}

func (s *lruStore[K, V]) Get(k K) (V, bool) { return s.c.Get(k) }

func (s *lruStore[K, V]) Add(k K, v V) (V, bool) {
	// PeekOrAdd never replaces a present value, so no value is dropped
	// without passing through the eviction callback.
	prev, ok, _ := s.c.PeekOrAdd(k, v)
	if ok {
		return prev, false
	}
	return v, true
}

func (s *lruStore[K, V]) Remove(k K) bool { return s.c.Remove(k) }
func (s *lruStore[K, V]) Keys() []K       { return s.c.Keys() }
func (s *lruStore[K, V]) Len() int        { return s.c.Len() }
func (s *lruStore[K, V]) Clear()          { s.c.Purge() }
func (s *lruStore[K, V]) Close()          { s.c.Purge() }
