package awskms

import (
	"errors"
	"fmt"
	"strings"
)

// Errors returned by this package. Test for them with errors.Is.
var (
	// ErrInvalidSpec is returned by ParseSpec, Spec.Validate and New for a
	// configuration that cannot work.
	ErrInvalidSpec = errors.New("awskms: invalid KMS configuration")
	// ErrMalformedEnvelope is returned by DecryptKey and ParseEnvelope when
	// the stored key is not Asherah's KMS envelope JSON.
	ErrMalformedEnvelope = errors.New("awskms: malformed KMS key envelope")
	// ErrAllRegionsFailed is matched by the *RegionsError that EncryptKey
	// returns when no region could generate a data key, and DecryptKey when
	// no region could decrypt the key.
	ErrAllRegionsFailed = errors.New("awskms: all regions failed")
	// ErrRegionsMissing is returned by EncryptKey, with
	// WithRequireAllRegions, when the data key could not be wrapped in
	// every configured region; it is wrapped with the regions' causes.
	ErrRegionsMissing = errors.New("awskms: data key not wrapped in every region")
)

// RegionError is the failure of one KMS call in one region. It wraps the
// SDK's error, so errors.As finds smithy and KMS exception types through it.
type RegionError struct {
	Region string // the AWS region
	Op     string // "GenerateDataKey", "Encrypt", "Decrypt" or "unwrap"
	Err    error
}

func (e *RegionError) Error() string {
	return fmt.Sprintf("region %s: %s: %v", e.Region, e.Op, oneLine(e.Err))
}

// Unwrap returns the cause.
func (e *RegionError) Unwrap() error { return e.Err }

// RegionsError is the failure of an operation in every region that was
// tried. Like an errors.Join of the per-region errors it unwraps to all of
// them (errors.Is and errors.As look at every region), and it matches
// ErrAllRegionsFailed; unlike errors.Join its message stays on one line.
type RegionsError struct {
	Op     string         // "encrypt key" or "decrypt key"
	Errors []*RegionError // one per region tried, in the order tried
}

func (e *RegionsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "awskms: failed to %s: all regions failed: ", e.Op)
	for i, r := range e.Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(r.Error())
	}
	return b.String()
}

// Unwrap returns every region's error.
func (e *RegionsError) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, r := range e.Errors {
		errs[i] = r
	}
	return errs
}

// Is reports whether target is ErrAllRegionsFailed.
func (e *RegionsError) Is(target error) bool { return target == ErrAllRegionsFailed }

// Regions returns the names of the regions that failed, in order.
func (e *RegionsError) Regions() []string {
	names := make([]string, len(e.Errors))
	for i, r := range e.Errors {
		names[i] = r.Region
	}
	return names
}

// oneLine folds a multi-line error message (the SDK's retry errors can
// span lines) onto one line.
func oneLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}
