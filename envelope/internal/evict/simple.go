package evict

import "sync"

// simpleStore is an unbounded map under a read-write lock: lookups take
// only the read lock.
type simpleStore[K comparable, V any] struct {
	mu       sync.RWMutex
	m        map[K]V
	onRemove func(K, V)
}

func newSimple[K comparable, V any](onRemove func(K, V)) *simpleStore[K, V] {
	return &simpleStore[K, V]{m: make(map[K]V), onRemove: onRemove}
}

func (s *simpleStore[K, V]) Get(k K) (V, bool) {
	s.mu.RLock()
	v, ok := s.m[k]
	s.mu.RUnlock()
	return v, ok
}

func (s *simpleStore[K, V]) Add(k K, v V) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[k]; ok {
		return old, false
	}
	s.m[k] = v
	return v, true
}

func (s *simpleStore[K, V]) Remove(k K) bool {
	s.mu.Lock()
	v, ok := s.m[k]
	delete(s.m, k)
	s.mu.Unlock()
	if ok {
		s.onRemove(k, v)
	}
	return ok
}

func (s *simpleStore[K, V]) Keys() []K {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := make([]K, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	return keys
}

func (s *simpleStore[K, V]) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

func (s *simpleStore[K, V]) Clear() {
	s.mu.Lock()
	old := s.m
	s.m = make(map[K]V)
	s.mu.Unlock()
	for k, v := range old {
		s.onRemove(k, v)
	}
}

func (s *simpleStore[K, V]) Close() { s.Clear() }
