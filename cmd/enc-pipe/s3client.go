package main

import (
	"context"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"github.com/spf13/pflag"
)

// Settings of the S3 client, and the S3 flags of encrypt and decrypt.
const (
	envS3Endpoint  = "ENC_PIPE_S3_ENDPOINT"
	envS3PathStyle = "ENC_PIPE_S3_PATH_STYLE"
	envS3Region    = "ENC_PIPE_S3_REGION"
)

// s3Settings is the S3 part of an invocation: the client settings (global
// flags), the flags of the command that runs, and the client, made once.
type s3Settings struct {
	endpoint  string
	pathStyle string // auto, true or false
	region    string

	ctx        context.Context // the command's context, for sinks
	encrypting bool            // the command writes ciphertext
	chunkSize  int             // plaintext chunk size of ciphertext outputs
	t          transferFlags
	guard      *uploadGuard // guarded by app.mu
	reserved   int64        // memory reserved for part buffers; guarded by app.mu

	once   sync.Once
	client *s3.Client
	err    error
}

// registerS3Flags adds the global S3 client flags.
func (a *app) registerS3Flags(pf *pflag.FlagSet) {
	pf.StringVar(&a.s3.endpoint, "s3-endpoint", a.getenv(envS3Endpoint), "S3 endpoint URL, for S3-compatible stores (default: AWS, or AWS_ENDPOINT_URL_S3)")
	pf.StringVar(&a.s3.pathStyle, "s3-path-style", a.envOr(envS3PathStyle, "auto"), "path-style S3 addressing (http://host/bucket/key): true, false, or auto (true when an endpoint is set)")
	pf.StringVar(&a.s3.region, "s3-region", a.getenv(envS3Region), "S3 region (default: AWS_REGION, AWS_DEFAULT_REGION, the AWS profile, else us-east-1)")
}

// checkS3Settings validates the client flags before anything is opened.
func (a *app) checkS3Settings() error {
	switch strings.ToLower(a.s3.pathStyle) {
	case "auto", "true", "false", "1", "0", "yes", "no":
	default:
		return usageErrorf("--s3-path-style %q: want auto, true or false", a.s3.pathStyle)
	}
	if e := a.s3.endpoint; e != "" && !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
		return usageErrorf("--s3-endpoint %q: want an http:// or https:// URL", e)
	}
	return nil
}

// s3Client returns the S3 client, made on first use from the default AWS
// configuration and credential chain (environment, shared files, SSO, web
// identity, container and instance roles) and the S3 settings.
func (a *app) s3Client(ctx context.Context) (*s3.Client, error) {
	a.s3.once.Do(func() {
		if a.s3.err = a.checkS3Settings(); a.s3.err != nil {
			return
		}
		cfg, err := loadAWSConfig(ctx)
		if err != nil {
			a.s3.err = err
			return
		}
		region := a.s3.region
		if region == "" {
			region = cfg.Region
		}
		if region == "" {
			region = a.getenv("AWS_DEFAULT_REGION")
		}
		if region == "" {
			region = "us-east-1"
		}
		endpoint := a.s3.endpoint
		pathStyle := false
		switch strings.ToLower(a.s3.pathStyle) {
		case "auto":
			pathStyle = endpoint != "" || a.getenv("AWS_ENDPOINT_URL_S3") != "" || a.getenv("AWS_ENDPOINT_URL") != ""
		default:
			pathStyle = strings.EqualFold(a.s3.pathStyle, "true") || a.s3.pathStyle == "1" || strings.EqualFold(a.s3.pathStyle, "yes")
		}
		a.s3.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
			o.Region = region
			o.UsePathStyle = pathStyle
			o.Logger = logging.Nop{}
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
			}
		})
	})
	return a.s3.client, a.s3.err
}
