package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/spf13/cobra"

	"github.com/enc-pipe/enc-pipe/records"
	"github.com/enc-pipe/enc-pipe/records/kafkarec"
)

// envKafkaPassword holds the SASL password: never a flag, which any user
// could read in the process list.
const envKafkaPassword = "ENC_PIPE_KAFKA_PASSWORD"

type kafkaFlags struct {
	brokers        []string
	from, to       string
	group          string
	dlq            string
	partitionFrom  string
	format         string
	fields         []string
	json           bool
	encryptKey     bool
	unboundKey     bool
	workers        int
	partitioner    string
	start          string
	idleExit       time.Duration
	maxRecords     int64
	drainTimeout   time.Duration
	maxMessage     int64
	tls            bool
	tlsCA          string
	tlsCert        string
	tlsKey         string
	tlsServerName  string
	tlsInsecure    bool
	saslMechanism  string
	saslUser       string
	sessionTimeout time.Duration
}

const kafkaLong = `Encrypt or decrypt the records of a Kafka topic into another topic, as a
member of a consumer group: run more instances with the same --group to share
the partitions.

Each record's value is encrypted (or decrypted); its key, headers and
timestamp are kept, and it goes to the destination partition numbered like
its source partition, so order is kept per partition (--partitioner key
places records by key instead). Formats: "binary" (default), enc-pipe's
compact record whose associated data binds it to its partition and key, and
"drr", Asherah's DataRowRecord JSON, which Asherah clients can read.
Decryption reads both.

Delivery is at least once: offsets are committed only after the destination
acknowledged the records (acks=all). A crash, kill or rebalance loses
nothing; records produced after the last commit are produced again, so the
destination may hold duplicates. SIGINT or SIGTERM stops reading, writes and
commits what was read (for at most --drain-timeout), and exits 130 or 143.

A record that cannot be processed (not an encrypted record, failed
authentication, missing partition, invalid JSON, too large) goes to the
--dlq topic as it was read, with headers enc-pipe.error.kind, enc-pipe.error
and enc-pipe.source; without --dlq it stops the run (offsets are committed up
to it). When encrypting, dead letters are plaintext: protect the topic like
the source.

The partition (tenant) of each record comes from --partition-from: key,
header:NAME, field:PATH (a JSON member, nested as a.b) or fixed:ID; the
default is --partition when encrypting and, when decrypting, the key id in
each record.

TLS: --tls (system roots), --tls-ca, --tls-cert/--tls-key for client
certificates. SASL: --sasl plain|scram-sha-256|scram-sha-512 --sasl-user U,
with the password in ENC_PIPE_KAFKA_PASSWORD.`

func (a *app) newKafkaCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kafka",
		Short: "Encrypt and decrypt Kafka topics, record by record",
		Long:  kafkaLong,
		Example: `  enc-pipe kafka encrypt --brokers k1:9092 --from orders --to orders.enc --group enc-orders --partition-from header:tenant --dlq orders.dlq
  enc-pipe kafka decrypt --brokers k1:9092 --from orders.enc --to orders.clear --group dec-orders --dlq orders.enc.dlq`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageErrorf("kafka needs a subcommand: encrypt or decrypt")
		},
	}
	cmd.AddCommand(a.newKafkaSubcommand(true), a.newKafkaSubcommand(false))
	return cmd
}

func (a *app) newKafkaSubcommand(encrypt bool) *cobra.Command {
	f := &kafkaFlags{}
	use, short := "decrypt", "Decrypt the records of a topic into another topic"
	if encrypt {
		use, short = "encrypt", "Encrypt the records of a topic into another topic"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  kafkaLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runKafka(cmd, f, encrypt)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.brokers, "brokers", nil, "bootstrap brokers, host:port (comma-separated)")
	fl.StringVar(&f.from, "from", "", "topic to read")
	fl.StringVar(&f.to, "to", "", "topic to write")
	fl.StringVar(&f.group, "group", "", "consumer group")
	fl.StringVar(&f.dlq, "dlq", "", "dead-letter topic for records that cannot be processed (default: stop at the first)")
	fl.StringVar(&f.partitionFrom, "partition-from", "", "where each record's partition comes from: key, header:NAME, field:PATH or fixed:ID")
	fl.StringSliceVar(&f.fields, "fields", nil, "encrypt only these top-level members of JSON values, in place (comma-separated)")
	fl.BoolVar(&f.json, "json", false, "values are JSON: refuse invalid JSON and duplicate member names")
	fl.IntVar(&f.workers, "workers", 0, "records transformed at once (default: the number of CPUs)")
	fl.StringVar(&f.partitioner, "partitioner", "same", "destination partition: same (as the source's) or key (murmur2 of the key)")
	fl.StringVar(&f.start, "start", "first", "where a group without committed offsets starts: first or last")
	fl.DurationVar(&f.idleExit, "idle-exit", 0, "exit 0 once no record has arrived for this long (default: run until stopped)")
	fl.Int64Var(&f.maxRecords, "max-records", 0, "exit 0 after this many records (default: no limit)")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", 4*time.Second, "after SIGINT or SIGTERM, how long to finish, write and commit the records already read")
	fl.Int64Var(&f.maxMessage, "max-message-bytes", 1<<20, "largest message produced; larger records are refused (dead-lettered)")
	fl.BoolVar(&f.tls, "tls", false, "connect with TLS")
	fl.StringVar(&f.tlsCA, "tls-ca", "", "PEM file of the CA certificates to trust (implies --tls)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "PEM file of the client certificate (implies --tls)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "PEM file of the client certificate's key")
	fl.StringVar(&f.tlsServerName, "tls-server-name", "", "server name to verify instead of the broker's host")
	fl.BoolVar(&f.tlsInsecure, "tls-insecure-skip-verify", false, "do not verify the brokers' certificates (testing only)")
	fl.StringVar(&f.saslMechanism, "sasl", "", "SASL mechanism: plain, scram-sha-256 or scram-sha-512 (password in "+envKafkaPassword+")")
	fl.StringVar(&f.saslUser, "sasl-user", "", "SASL user name")
	fl.DurationVar(&f.sessionTimeout, "session-timeout", 0, "consumer group session timeout (default: kafka-go's 30s; heartbeats at a tenth)")
	if encrypt {
		fl.StringVar(&f.format, "format", "binary", "encrypted record format: binary or drr (Asherah DataRowRecord JSON)")
		fl.BoolVar(&f.encryptKey, "encrypt-key", false, "also encrypt the record key (binary): records leave without a key")
		fl.BoolVar(&f.unboundKey, "unbound-key", false, "do not bind the record key to the value (allows re-keying; binary)")
	}
	return cmd
}

func (a *app) runKafka(cmd *cobra.Command, f *kafkaFlags, encrypt bool) error {
	ctx := cmd.Context()
	switch {
	case len(f.brokers) == 0:
		return usageErrorf("--brokers is required")
	case f.from == "" || f.to == "" || f.group == "":
		return usageErrorf("--from, --to and --group are required")
	case f.workers < 0 || f.maxRecords < 0:
		return usageErrorf("--workers and --max-records must not be negative")
	}
	ps, err := a.kafkaPartitionSource(cmd, f, encrypt)
	if err != nil {
		return err
	}
	start := kafka.FirstOffset
	switch f.start {
	case "first":
	case "last":
		start = kafka.LastOffset
	default:
		return usageErrorf("--start %q: want first or last", f.start)
	}
	dialer, transport, err := f.connection()
	if err != nil {
		return err
	}
	cfg := kafkarec.Config{
		Brokers: f.brokers, From: f.from, To: f.to, Group: f.group, DeadLetterTopic: f.dlq,
		Workers: f.workers, Partitioner: kafkarec.Partitioner(f.partitioner), StartOffset: start,
		IdleTimeout: f.idleExit, MaxRecords: f.maxRecords, DrainTimeout: f.drainTimeout, MaxMessageBytes: f.maxMessage,
		Dialer: dialer, Transport: transport, Metrics: a.obs.provider,
	}
	if f.sessionTimeout > 0 {
		cfg.SessionTimeout, cfg.RebalanceTimeout, cfg.HeartbeatInterval = f.sessionTimeout, f.sessionTimeout, f.sessionTimeout/10
	}
	cfg.Transform = records.TransformFunc(nil) // checked below, once built
	if err := cfg.Validate(); err != nil {
		return usageErrorf("%s", strings.TrimPrefix(err.Error(), "kafkarec: "))
	}

	be, err := a.openBackend(ctx, encrypt)
	if err != nil {
		return err
	}
	defer be.Close()
	var xf interface {
		records.Transformer
		Close() error
	}
	if encrypt {
		format, err := records.ParseFormat(f.format)
		if err != nil {
			return usageErrorf("--format %q: want binary or drr", f.format)
		}
		xf, err = records.NewEncrypter(records.EncryptConfig{
			Factory: be.factory, Partition: ps, Format: format, JSON: f.json, Fields: f.fields,
			EncryptKey: f.encryptKey, UnboundKey: f.unboundKey,
			// Key, headers and batch framing take room too.
			MaxValueSize: int(f.maxMessage) - 1024,
		})
		if err != nil {
			return usageErrorf("%s", strings.TrimPrefix(err.Error(), "records: "))
		}
	} else {
		xf, err = records.NewDecrypter(records.DecryptConfig{Factory: be.factory, Partition: ps, JSON: f.json, Fields: f.fields})
		if err != nil {
			return usageErrorf("%s", strings.TrimPrefix(err.Error(), "records: "))
		}
	}
	defer xf.Close()
	cfg.Transform = xf
	a.obs.log.Info("kafka run started", "brokers", strings.Join(f.brokers, ","), "from", f.from, "to", f.to,
		"group", f.group, "dlq", f.dlq, "workers", f.workers)
	st, err := kafkarec.Run(ctx, cfg)
	a.obs.log.Info("kafka run ended", "read", st.Read, "written", st.Written, "dead_lettered", st.DeadLettered,
		"committed", st.Acked, "lag", st.Lag)
	return kafkaError(err)
}

// kafkaPartitionSource resolves --partition-from and --partition.
func (a *app) kafkaPartitionSource(cmd *cobra.Command, f *kafkaFlags, encrypt bool) (records.PartitionSource, error) {
	explicit := a.partitionExplicit(cmd)
	switch {
	case f.partitionFrom != "" && explicit:
		return records.PartitionSource{}, usageErrorf("use either --partition or --partition-from, not both")
	case f.partitionFrom != "":
		ps, err := records.ParsePartitionSource(f.partitionFrom)
		if err != nil {
			return ps, usageErrorf("--partition-from: %s", strings.TrimPrefix(err.Error(), "records: "))
		}
		return ps, nil
	case explicit || encrypt:
		if a.g.partition == "" {
			return records.PartitionSource{}, usageErrorf("--partition: empty partition id")
		}
		return records.FixedPartition(a.g.partition), nil
	}
	return records.PartitionSource{}, nil // decrypt: from each record's key id
}

// connection builds the consumer's dialer and the producers' transport
// with the TLS and SASL flags.
func (f *kafkaFlags) connection() (*kafka.Dialer, *kafka.Transport, error) {
	var tlsCfg *tls.Config
	if f.tls || f.tlsCA != "" || f.tlsCert != "" || f.tlsInsecure || f.tlsServerName != "" {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.tlsServerName, InsecureSkipVerify: f.tlsInsecure}
		if f.tlsCA != "" {
			pem, err := os.ReadFile(f.tlsCA)
			if err != nil {
				return nil, nil, ioError(err, "--tls-ca")
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, usageErrorf("--tls-ca %s: no PEM certificate in it", f.tlsCA)
			}
			tlsCfg.RootCAs = pool
		}
		if (f.tlsCert == "") != (f.tlsKey == "") {
			return nil, nil, usageErrorf("--tls-cert and --tls-key go together")
		}
		if f.tlsCert != "" {
			cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
			if err != nil {
				return nil, nil, usageErrorf("--tls-cert/--tls-key: %v", err)
			}
			tlsCfg.Certificates = []tls.Certificate{cert}
		}
	}
	var mech sasl.Mechanism
	if f.saslMechanism != "" {
		pass := os.Getenv(envKafkaPassword)
		if f.saslUser == "" || pass == "" {
			return nil, nil, usageErrorf("--sasl needs --sasl-user and the password in %s", envKafkaPassword)
		}
		var err error
		switch strings.ToLower(f.saslMechanism) {
		case "plain":
			mech = plain.Mechanism{Username: f.saslUser, Password: pass}
		case "scram-sha-256":
			mech, err = scram.Mechanism(scram.SHA256, f.saslUser, pass)
		case "scram-sha-512":
			mech, err = scram.Mechanism(scram.SHA512, f.saslUser, pass)
		default:
			return nil, nil, usageErrorf("--sasl %q: want plain, scram-sha-256 or scram-sha-512", f.saslMechanism)
		}
		if err != nil {
			return nil, nil, usageErrorf("--sasl: %v", err)
		}
	} else if f.saslUser != "" {
		return nil, nil, usageErrorf("--sasl-user needs --sasl")
	}
	if tlsCfg == nil && mech == nil {
		return nil, nil, nil
	}
	dialer := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: tlsCfg, SASLMechanism: mech}
	return dialer, &kafka.Transport{TLS: tlsCfg, SASL: mech}, nil
}

// kafkaError gives a run's error its exit code.
func kafkaError(err error) error {
	if err == nil {
		return nil
	}
	var re *records.RecordError
	if errors.As(err, &re) {
		switch re.Kind {
		case records.KindKey, records.KindPartition:
			return keyError(err, "record not processed (use --dlq to set such records aside)")
		}
		return integrityError(err, "record not processed (use --dlq to set such records aside)")
	}
	if code := classify(err); code != 0 {
		return withCode(code, err, "kafka")
	}
	return ioError(err, "kafka")
}
