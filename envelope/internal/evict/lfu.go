package evict

import (
	"container/list"
	"sync"
)

// lfuStore evicts the least frequently used entry; among entries with the
// same count, the least recently used one. All operations are O(1): each
// frequency has a list of its entries, most recent first.
type lfuStore[K comparable, V any] struct {
	mu       sync.Mutex
	capacity int
	items    map[K]*lfuItem[K, V]
	freqs    map[uint64]*list.List
	minFreq  uint64
	onRemove func(K, V)
}

type lfuItem[K comparable, V any] struct {
	key  K
	val  V
	freq uint64
	elem *list.Element
}

func newLFU[K comparable, V any](capacity int, onRemove func(K, V)) *lfuStore[K, V] {
	return &lfuStore[K, V]{
		capacity: capacity,
		items:    make(map[K]*lfuItem[K, V]),
		freqs:    make(map[uint64]*list.List),
		onRemove: onRemove,
	}
}

func (s *lfuStore[K, V]) Get(k K) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	s.bump(it)
	return it.val, true
}

// bump moves it to the list of the next frequency.
func (s *lfuStore[K, V]) bump(it *lfuItem[K, V]) {
	l := s.freqs[it.freq]
	l.Remove(it.elem)
	if l.Len() == 0 {
		delete(s.freqs, it.freq)
		if s.minFreq == it.freq {
			s.minFreq++
		}
	}
	it.freq++
	it.elem = s.list(it.freq).PushFront(it)
}

func (s *lfuStore[K, V]) list(freq uint64) *list.List {
	l, ok := s.freqs[freq]
	if !ok {
		l = list.New()
		s.freqs[freq] = l
	}
	return l
}

func (s *lfuStore[K, V]) Add(k K, v V) (V, bool) {
	var evicted *lfuItem[K, V]
	s.mu.Lock()
	if it, ok := s.items[k]; ok {
		s.mu.Unlock()
		return it.val, false
	}
	if len(s.items) >= s.capacity {
		evicted = s.evictLocked()
	}
	it := &lfuItem[K, V]{key: k, val: v, freq: 1}
	it.elem = s.list(1).PushFront(it)
	s.items[k] = it
	s.minFreq = 1
	s.mu.Unlock()
	if evicted != nil {
		s.onRemove(evicted.key, evicted.val)
	}
	return v, true
}

func (s *lfuStore[K, V]) evictLocked() *lfuItem[K, V] {
	l := s.freqs[s.minFreq]
	if l == nil || l.Len() == 0 {
		return nil
	}
	it := l.Back().Value.(*lfuItem[K, V])
	s.unlinkLocked(it)
	return it
}

func (s *lfuStore[K, V]) unlinkLocked(it *lfuItem[K, V]) {
	l := s.freqs[it.freq]
	l.Remove(it.elem)
	if l.Len() == 0 {
		delete(s.freqs, it.freq)
	}
	delete(s.items, it.key)
	if len(s.items) == 0 {
		s.minFreq = 0
		return
	}
	if _, ok := s.freqs[s.minFreq]; !ok {
		s.recomputeMinLocked()
	}
}

// recomputeMinLocked finds the smallest frequency in use. It runs only
// after a removal emptied the minimum list, which is rare.
func (s *lfuStore[K, V]) recomputeMinLocked() {
	first := true
	for f := range s.freqs {
		if first || f < s.minFreq {
			s.minFreq = f
			first = false
		}
	}
}

func (s *lfuStore[K, V]) Remove(k K) bool {
	s.mu.Lock()
	it, ok := s.items[k]
	if ok {
		s.unlinkLocked(it)
	}
	s.mu.Unlock()
	if ok {
		s.onRemove(it.key, it.val)
	}
	return ok
}

func (s *lfuStore[K, V]) Keys() []K {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]K, 0, len(s.items))
	for k := range s.items {
		keys = append(keys, k)
	}
	return keys
}

func (s *lfuStore[K, V]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

func (s *lfuStore[K, V]) Clear() {
	s.mu.Lock()
	old := s.items
	s.items = make(map[K]*lfuItem[K, V])
	s.freqs = make(map[uint64]*list.List)
	s.minFreq = 0
	s.mu.Unlock()
	for _, it := range old {
		s.onRemove(it.key, it.val)
	}
}

func (s *lfuStore[K, V]) Close() { s.Clear() }
