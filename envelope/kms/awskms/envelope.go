package awskms

import (
	"encoding/json"
	"fmt"

	"github.com/enc-pipe/enc-pipe/envelope"
)

// Envelope is Asherah's AWS KMS key envelope: a key sealed under a data
// key, and that data key wrapped by the master key of each region. Its JSON
// form is Asherah's; byte fields are standard padded base64.
type Envelope struct {
	EncryptedKey []byte `json:"encryptedKey"`
	KEKs         []KEK  `json:"kmsKeks"`
}

// KEK is the data key of an Envelope wrapped by one region's master key.
type KEK struct {
	Region       string `json:"region"`
	ARN          string `json:"arn"`
	EncryptedKEK []byte `json:"encryptedKek"`
}

// ParseEnvelope decodes Asherah's envelope JSON. Field names match
// case-insensitively and unknown fields are ignored, as in Asherah. It fails
// with an error wrapping ErrMalformedEnvelope when the JSON does not parse,
// encryptedKey is too short to be an AES-GCM blob, or no region's KEK is
// usable.
func ParseEnvelope(b []byte) (*Envelope, error) {
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedEnvelope, err)
	}
	if len(env.EncryptedKey) < envelope.Overhead {
		return nil, fmt.Errorf("%w: encryptedKey has %d bytes, fewer than an AES-GCM blob", ErrMalformedEnvelope, len(env.EncryptedKey))
	}
	usable := 0
	for _, k := range env.KEKs {
		if k.Region != "" && len(k.EncryptedKEK) > 0 {
			usable++
		}
	}
	if usable == 0 {
		return nil, fmt.Errorf("%w: no region's encrypted data key (kmsKeks) in it", ErrMalformedEnvelope)
	}
	return &env, nil
}

// Marshal returns the envelope's JSON.
func (e *Envelope) Marshal() ([]byte, error) { return json.Marshal(e) }
