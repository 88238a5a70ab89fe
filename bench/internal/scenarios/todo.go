package scenarios

// The scenarios below wait for code that other branches are building. Each
// is listed in the report as "not measured yet" with its Todo; to measure
// it, replace Todo with Setup, Commands (or PerRound) and Ratios, as in
// files.go. Records scenarios give Measurement.Records so that the report
// shows records/s.

// JSONLines is records/s of the JSON Lines pipeline against forwarding.
func JSONLines() Def {
	return Def{
		ID:    "jsonl",
		Group: "Records",
		Title: "JSON Lines: records/s of `enc-pipe records encrypt`/`decrypt` vs plain forwarding",
		Todo: "the records pipeline (records/ package, `enc-pipe records`) is being rebuilt on another branch. " +
			"To add: a fixed-seed generated JSON Lines file on tmpfs (e.g. 1 M lines of ~200 B), `enc-pipe records encrypt` and `decrypt` → /dev/null, " +
			"against a plain forwarder that reads and writes the same lines unchanged (a bufio line copier in bench/cmd); Records = line count, ratios encrypt/forward and decrypt/forward.",
	}
}

// Kafka is records/s through Kafka, encrypted vs plainly forwarded.
func Kafka() Def {
	return Def{
		ID:    "kafka",
		Group: "Kafka",
		Title: "Kafka: records/s topic → topic, enc-pipe encrypt vs plain forwarding",
		Todo: "the Kafka source and sink are being built on another branch. " +
			"To add: Available checks ENCPIPE_TEST_KAFKA (the kfake broker on loopback, . /tmp/encpipe-ci/env.sh); Setup produces N records to a topic; " +
			"commands: the enc-pipe Kafka mode consuming that topic and producing encrypted records to another, against a plain kafka-go consume → produce forwarder on the same broker; Records = N.",
	}
}

// S3 is an upload and download through enc-pipe vs a plain copy.
func S3() Def {
	return Def{
		ID:    "s3",
		Group: "S3",
		Title: "S3: enc-pipe encrypt file → s3:// and back vs a plain multipart copy",
		Todo: "the S3 source and sink are being built on another branch. " +
			"To add: Available checks ENCPIPE_TEST_S3_* (versitygw on loopback); commands: `enc-pipe encrypt -i FILE -o s3://bucket/key` and `decrypt` back to /dev/null, " +
			"against a plain aws-sdk-go-v2 multipart upload and download of the same file with the same part size; MB/s and ratios.",
	}
}
