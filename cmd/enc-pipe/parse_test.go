package main

import "testing"

func TestPartitionFromKeyID(t *testing.T) {
	for _, c := range []struct {
		id, service, product, want string
		ok                         bool
	}{
		{"_IK_partition-1_svc_prod", "svc", "prod", "partition-1", true},
		{"_IK_regional-partition_svc_prod_us-west-2", "svc", "prod", "regional-partition", true},
		{"_IK_a_b_svc_prod", "svc", "prod", "a_b", true}, // "_" inside a partition id
		{"_IK_7_enc-pipe_default", "enc-pipe", "default", "7", true},
		{"_IK_p_svc_prod_extra_part", "svc", "prod", "", false},
		{"_IK_p_other_prod", "svc", "prod", "", false},
		{"_SK_svc_prod", "svc", "prod", "", false},
		{"_IK__svc_prod", "svc", "prod", "", false},
	} {
		got, ok := partitionFromKeyID(c.id, c.service, c.product)
		if got != c.want || ok != c.ok {
			t.Errorf("partitionFromKeyID(%q) = %q, %v; want %q, %v", c.id, got, ok, c.want, c.ok)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "65536": 65536, "64k": 64 << 10, "64KiB": 64 << 10, "1M": 1 << 20, "1MiB": 1 << 20, "2g": 2 << 30, "16MB": 16 << 20} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "k", "1.5M", "12x", "99999999999999999t"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
}

func TestParseRange(t *testing.T) {
	for in, want := range map[string][2]int64{"0:10": {0, 10}, "4k:4k": {4096, 4096}, "100:": {100, -1}} {
		off, n, err := parseRange(in)
		if err != nil || off != want[0] || n != want[1] {
			t.Errorf("parseRange(%q) = %d, %d, %v", in, off, n, err)
		}
	}
	for _, in := range []string{"10", ":10", "a:b", "1:-1"} {
		if _, _, err := parseRange(in); exitCode(err) != exitUsage {
			t.Errorf("parseRange(%q) = %v, want a usage error", in, err)
		}
	}
}
