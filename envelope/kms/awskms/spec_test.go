package awskms_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope/kms/awskms"
)

const (
	arnW = "arn:aws:kms:us-west-2:111122223333:key/aaaa"
	arnE = "arn:aws:kms:us-east-1:111122223333:key/bbbb"
	arnC = "arn:aws:kms:eu-central-1:111122223333:key/cccc"
)

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []awskms.Region
	}{
		{"us-west-2=" + arnW, []awskms.Region{{"us-west-2", arnW}}},
		{"aws:us-west-2=" + arnW, []awskms.Region{{"us-west-2", arnW}}},
		// Without preferred=, the first region listed is preferred; order kept.
		{"us-west-2=" + arnW + ",us-east-1=" + arnE, []awskms.Region{{"us-west-2", arnW}, {"us-east-1", arnE}}},
		// preferred= moves its region to the front and keeps the others' order.
		{"us-west-2=" + arnW + ",us-east-1=" + arnE + ",eu-central-1=" + arnC + ",preferred=eu-central-1",
			[]awskms.Region{{"eu-central-1", arnC}, {"us-west-2", arnW}, {"us-east-1", arnE}}},
		{"preferred=us-east-1, us-west-2=" + arnW + " , us-east-1=" + arnE,
			[]awskms.Region{{"us-east-1", arnE}, {"us-west-2", arnW}}},
		// Aliases and key ids are accepted as they are.
		{"us-west-2=alias/encpipe", []awskms.Region{{"us-west-2", "alias/encpipe"}}},
		{"us-west-2=arn:aws:kms:us-west-2:111122223333:alias/encpipe", []awskms.Region{{"us-west-2", "arn:aws:kms:us-west-2:111122223333:alias/encpipe"}}},
	} {
		got, err := awskms.ParseSpec(tc.in)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got.Regions, tc.want) {
			t.Errorf("ParseSpec(%q) = %+v, want %+v", tc.in, got.Regions, tc.want)
		}
		if got.Preferred() != tc.want[0].Name {
			t.Errorf("ParseSpec(%q).Preferred() = %q", tc.in, got.Preferred())
		}
		// String round-trips.
		again, err := awskms.ParseSpec(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseSpec(%q).String() = %q does not round-trip: %+v %v", tc.in, got.String(), again, err)
		}
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty item"},
		{"aws:", "empty item"},
		{"us-west-2", "is not REGION=ARN"},
		{"us-west-2=", "has no key ARN"},
		{"=" + arnW, "is not an AWS region name"},
		{"US-WEST-2=" + arnW, "is not an AWS region name"},
		{"us-west-2=" + arnW + ",us-west-2=" + arnW, "given twice"},
		{"us-west-2=" + arnW + ",,us-east-1=" + arnE, "empty item"},
		{"us-west-2=" + arnW + ",preferred=us-east-1", "preferred region us-east-1 is not one of"},
		{"us-west-2=" + arnW + ",preferred=", "names no region"},
		{"us-west-2=" + arnW + ",preferred=us-west-2,preferred=us-west-2", "preferred= is given twice"},
		{"preferred=us-west-2", "no region given"},
		{"us-west-2=" + arnE, `belongs to region "us-east-1"`},
		{"us-west-2=arn:aws:s3:us-west-2:1:bucket", "is not a KMS key ARN"},
		{"us-west-2=arn:aws:kms:us-west-2", "is not a KMS key ARN"},
	} {
		_, err := awskms.ParseSpec(tc.in)
		if !errors.Is(err, awskms.ErrInvalidSpec) {
			t.Errorf("ParseSpec(%q) = %v, want ErrInvalidSpec", tc.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSpec(%q) = %q, want it to mention %q", tc.in, err, tc.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseSpec(%q): error spans lines: %q", tc.in, err)
		}
	}
}
