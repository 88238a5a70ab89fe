package awskms

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
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
	// ErrThrottled is matched by a *RegionError (and so by a *RegionsError
	// holding one) whose last attempt KMS answered with a throttling error
	// (ThrottlingException, TooManyRequestsException,
	// LimitExceededException...), after the retries of the RetryPolicy.
	ErrThrottled = errors.New("awskms: throttled by KMS")
)

// RegionError is the failure of one KMS call in one region, after the
// retries of the RetryPolicy. It wraps the SDK's error, so errors.As finds
// smithy and KMS exception types and *retry.MaxAttemptsError through it.
type RegionError struct {
	Region string // the AWS region
	Op     string // "GenerateDataKey", "Encrypt", "Decrypt" or "unwrap"
	Err    error
}

// Error names the region, the call and the cause on one line. For an
// answer from KMS the cause reads "throttled: CODE: message (HTTP 400,
// request id ID, gave up after N attempts)", "server error: ..." for HTTP
// 5xx, or "CODE: message (...)" otherwise.
func (e *RegionError) Error() string {
	return fmt.Sprintf("region %s: %s: %s", e.Region, e.Op, describe(e.Err))
}

// Unwrap returns the cause.
func (e *RegionError) Unwrap() error { return e.Err }

// Is reports whether target is ErrThrottled and the cause is a throttling
// answer.
func (e *RegionError) Is(target error) bool { return target == ErrThrottled && throttled(e.Err) }

var throttleCheck = retry.IsErrorThrottles(retry.DefaultThrottles)

// throttled reports whether err is a throttling answer, as the SDK's
// retryer classifies them.
func throttled(err error) bool {
	return err != nil && throttleCheck.IsErrorThrottle(err) == aws.TrueTernary
}

// describe returns a one-line account of a KMS call's failure: for an
// answer from KMS its kind, error code and message, HTTP status, request id
// and number of attempts; otherwise the error's own text.
func describe(err error) string {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return oneLine(err)
	}
	var b strings.Builder
	var resp *awshttp.ResponseError
	hasResp := errors.As(err, &resp) && resp.Response != nil
	switch {
	case throttled(err):
		b.WriteString("throttled: ")
	case hasResp && resp.HTTPStatusCode() >= 500:
		b.WriteString("server error: ")
	}
	b.WriteString(api.ErrorCode())
	if m := api.ErrorMessage(); m != "" {
		b.WriteString(": ")
		b.WriteString(m)
	}
	var details []string
	if hasResp {
		details = append(details, fmt.Sprintf("HTTP %d", resp.HTTPStatusCode()))
		if id := resp.ServiceRequestID(); id != "" {
			details = append(details, "request id "+id)
		}
	}
	var maxed *retry.MaxAttemptsError
	if errors.As(err, &maxed) {
		details = append(details, fmt.Sprintf("gave up after %d attempts", maxed.Attempt))
	}
	if len(details) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(details, ", "))
		b.WriteString(")")
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

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
