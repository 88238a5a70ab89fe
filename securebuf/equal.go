package securebuf

import "crypto/subtle"

// Equal reports whether a and b hold the same bytes. The comparison takes
// time that depends only on the lengths (crypto/subtle). It returns an
// error when either secret is closed.
func Equal(a, b Secret) (bool, error) {
	var eq bool
	err := a.WithBytes(func(x []byte) error {
		return b.WithBytes(func(y []byte) error {
			eq = subtle.ConstantTimeCompare(x, y) == 1
			return nil
		})
	})
	return eq && err == nil, err
}

// EqualBytes reports whether s holds exactly the bytes of b, in time that
// depends only on the lengths (crypto/subtle).
func EqualBytes(s Secret, b []byte) (bool, error) {
	var eq bool
	err := s.WithBytes(func(x []byte) error {
		eq = subtle.ConstantTimeCompare(x, b) == 1
		return nil
	})
	return eq && err == nil, err
}
