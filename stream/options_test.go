package stream_test

import (
	"reflect"
	"testing"

	"github.com/enc-pipe/enc-pipe/stream"
)

// TestOptionTypesAreDistinct: a WriterOption cannot be given to NewReader
// or NewReaderAt, nor a ReaderOption to NewWriter. That is checked by the
// compiler; this test keeps the two types from becoming one again (an
// alias, or a shared Option type that one side would ignore).
func TestOptionTypesAreDistinct(t *testing.T) {
	w := reflect.TypeFor[stream.WriterOption]()
	r := reflect.TypeFor[stream.ReaderOption]()
	if w.AssignableTo(r) || r.AssignableTo(w) || w.ConvertibleTo(r) || r.ConvertibleTo(w) {
		t.Fatalf("%v and %v can stand for each other", w, r)
	}
	for _, f := range []any{stream.NewReader, stream.NewReaderAt} {
		ft := reflect.TypeOf(f)
		if opt := ft.In(ft.NumIn() - 1).Elem(); opt != r {
			t.Fatalf("%v takes %v options, want %v", ft, opt, r)
		}
	}
	ft := reflect.TypeOf(stream.NewWriter)
	if opt := ft.In(ft.NumIn() - 1).Elem(); opt != w {
		t.Fatalf("NewWriter takes %v options, want %v", opt, w)
	}
}
