// Package s3retry holds what the S3 source and sink share about failed
// requests: which may be sent again, and how long to wait before.
package s3retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// Retryable reports whether a failed request, or a body cut short, may
// succeed if sent again: not after ctx is done, not for the errors in
// never, and not for a 4xx answer other than 408 and 429.
func Retryable(ctx context.Context, err error, never ...error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	for _, e := range never {
		if errors.Is(err, e) {
			return false
		}
	}
	if code := StatusCode(err); code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests {
		return false
	}
	return true
}

// StatusCode returns the HTTP status of a failed request, or 0.
func StatusCode(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// Sleep waits before retry number attempt (0 for the first): base doubled
// per attempt, at most 5s, with jitter. It returns early with ctx's cause
// when ctx is done.
func Sleep(ctx context.Context, base time.Duration, attempt int) error {
	d := min(base<<min(attempt, 6), 5*time.Second)
	if d > 0 {
		d = d/2 + rand.N(d/2+1)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
