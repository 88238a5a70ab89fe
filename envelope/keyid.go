package envelope

import "time"

// Key ids: see the package documentation (the "_" ambiguity).

func systemKeyID(service, product, suffix string) string {
	id := "_SK_" + service + "_" + product
	if suffix != "" {
		id += "_" + suffix
	}
	return id
}

func intermediateKeyID(partition, service, product, suffix string) string {
	id := "_IK_" + partition + "_" + service + "_" + product
	if suffix != "" {
		id += "_" + suffix
	}
	return id
}

// IsRegionSuffix reports whether s has the shape of an AWS region name as
// used for key id suffixes: lowercase letters in at least two
// hyphen-separated words followed by a number, such as "us-west-2" or
// "us-gov-east-1". It never contains "_", which is what keeps a suffixed id
// from being confused with another partition's id.
func IsRegionSuffix(s string) bool {
	// [a-z]{2,}(-[a-z]+)+-[0-9]+
	i := 0
	for i < len(s) && s[i] >= 'a' && s[i] <= 'z' {
		i++
	}
	if i < 2 {
		return false
	}
	words := 0
	for i < len(s) && s[i] == '-' {
		j := i + 1
		for j < len(s) && s[j] >= 'a' && s[j] <= 'z' {
			j++
		}
		if j == i+1 {
			break // not a word: the number follows
		}
		words++
		i = j
	}
	if words < 1 || i >= len(s) || s[i] != '-' {
		return false
	}
	i++
	if i == len(s) {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// truncateCreated returns the created time of a new system or intermediate
// key: now truncated to precision (Asherah's time.Truncate, which counts
// from year 1), in Unix seconds.
func truncateCreated(now time.Time, precision time.Duration) int64 {
	if precision > 0 {
		now = now.Truncate(precision)
	}
	return now.Unix()
}
