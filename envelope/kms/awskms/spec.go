package awskms

import (
	"fmt"
	"strings"
)

// Region is one region of a multi-region KMS configuration: the AWS region
// and the master key used there.
type Region struct {
	// Name is the AWS region, such as "us-west-2".
	Name string
	// KeyID names the master key in that region: a key ARN (the usual
	// choice, and what Asherah stores), an alias ARN, "alias/NAME" or a key
	// id. An ARN must be a KMS ARN of this region.
	KeyID string
}

// Spec is a multi-region KMS configuration. Regions are in fallback order:
// the first is the preferred region, where data keys are generated and
// which decryption tries first; the others are tried in the order given.
type Spec struct {
	Regions []Region
}

// Preferred returns the preferred region's name, or "" for an empty Spec.
func (s Spec) Preferred() string {
	if len(s.Regions) == 0 {
		return ""
	}
	return s.Regions[0].Name
}

// String returns the Spec in the syntax ParseSpec reads, without the
// "aws:" prefix. Key ARNs are not secret, so nothing is redacted.
func (s Spec) String() string {
	parts := make([]string, 0, len(s.Regions)+1)
	for _, r := range s.Regions {
		parts = append(parts, r.Name+"="+r.KeyID)
	}
	if len(s.Regions) > 1 {
		parts = append(parts, "preferred="+s.Preferred())
	}
	return strings.Join(parts, ",")
}

// Validate checks that the Spec names at least one region, that no region
// appears twice, that every region has a key, and that every key ARN
// belongs to KMS in its own region. Errors wrap ErrInvalidSpec.
func (s Spec) Validate() error {
	if len(s.Regions) == 0 {
		return fmt.Errorf("%w: no region given (want REGION=ARN[,REGION=ARN...][,preferred=REGION])", ErrInvalidSpec)
	}
	seen := make(map[string]bool, len(s.Regions))
	for _, r := range s.Regions {
		if !validRegionName(r.Name) {
			return fmt.Errorf("%w: %q is not an AWS region name", ErrInvalidSpec, r.Name)
		}
		if seen[r.Name] {
			return fmt.Errorf("%w: region %s is given twice", ErrInvalidSpec, r.Name)
		}
		seen[r.Name] = true
		if r.KeyID == "" {
			return fmt.Errorf("%w: region %s has no key ARN", ErrInvalidSpec, r.Name)
		}
		if strings.HasPrefix(r.KeyID, "arn:") {
			// arn:PARTITION:kms:REGION:ACCOUNT:key/ID or :alias/NAME
			f := strings.SplitN(r.KeyID, ":", 6)
			if len(f) != 6 || f[2] != "kms" || f[5] == "" {
				return fmt.Errorf("%w: region %s: %q is not a KMS key ARN (want arn:aws:kms:REGION:ACCOUNT:key/ID)", ErrInvalidSpec, r.Name, r.KeyID)
			}
			if f[3] != r.Name {
				return fmt.Errorf("%w: region %s: key ARN %q belongs to region %q", ErrInvalidSpec, r.Name, r.KeyID, f[3])
			}
		}
	}
	return nil
}

// ParseSpec parses the CLI syntax of a multi-region AWS KMS configuration:
//
//	[aws:]REGION=ARN[,REGION=ARN...][,preferred=REGION]
//
// for example
//
//	aws:us-west-2=arn:aws:kms:us-west-2:111122223333:key/1234,us-east-1=arn:aws:kms:us-east-1:111122223333:key/5678,preferred=us-east-1
//
// Regions keep the order given, except that the preferred region is moved
// to the front. Without preferred=, the first region listed is preferred.
// Errors wrap ErrInvalidSpec and fit on one line.
func ParseSpec(s string) (Spec, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "aws:")
	var spec Spec
	preferred := ""
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return Spec{}, fmt.Errorf("%w: empty item in %q (want REGION=ARN[,REGION=ARN...][,preferred=REGION])", ErrInvalidSpec, s)
		}
		name, value, ok := strings.Cut(item, "=")
		if !ok {
			return Spec{}, fmt.Errorf("%w: %q is not REGION=ARN", ErrInvalidSpec, item)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if name == "preferred" {
			if preferred != "" {
				return Spec{}, fmt.Errorf("%w: preferred= is given twice", ErrInvalidSpec)
			}
			if value == "" {
				return Spec{}, fmt.Errorf("%w: preferred= names no region", ErrInvalidSpec)
			}
			preferred = value
			continue
		}
		spec.Regions = append(spec.Regions, Region{Name: name, KeyID: value})
	}
	if err := spec.Validate(); err != nil {
		return Spec{}, err
	}
	if preferred != "" {
		i := spec.index(preferred)
		if i < 0 {
			return Spec{}, fmt.Errorf("%w: preferred region %s is not one of the configured regions", ErrInvalidSpec, preferred)
		}
		p := spec.Regions[i]
		copy(spec.Regions[1:i+1], spec.Regions[:i])
		spec.Regions[0] = p
	}
	return spec, nil
}

func (s Spec) index(region string) int {
	for i, r := range s.Regions {
		if r.Name == region {
			return i
		}
	}
	return -1
}

// validRegionName accepts lower-case letters, digits and dashes, starting
// with a letter: "us-west-2", "eu-central-1", "us-gov-west-1", and names
// of local test setups alike.
func validRegionName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
