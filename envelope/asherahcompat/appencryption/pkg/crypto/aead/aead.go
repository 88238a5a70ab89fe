// Package aead is Asherah Go's pkg/crypto/aead on top of package
// envelope (see package appencryption of this tree).
package aead

import (
	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/asherahcompat/appencryption"
)

// NewAES256GCM returns Asherah's AEAD, envelope.NewAES256GCM: AES-256-GCM
// with the blob laid out ciphertext || tag || nonce.
func NewAES256GCM() appencryption.AEAD { return envelope.NewAES256GCM() }
