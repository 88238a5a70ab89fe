package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/config"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

func TestParseSecureMemory(t *testing.T) {
	for in, want := range map[string]securebuf.AccessMode{
		"":         securebuf.AccessAuto,
		"auto":     securebuf.AccessAuto,
		"pkey":     securebuf.AccessPKey,
		"PKEY":     securebuf.AccessPKey,
		"mprotect": securebuf.AccessMprotect,
	} {
		got, err := config.ParseSecureMemory(in)
		if err != nil || got != want {
			t.Errorf("ParseSecureMemory(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"mpk", "none", "off", " auto"} {
		_, err := config.ParseSecureMemory(in)
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "--secure-memory") ||
			!strings.Contains(err.Error(), "want auto, pkey or mprotect") {
			t.Errorf("ParseSecureMemory(%q): %v", in, err)
		}
	}
}
