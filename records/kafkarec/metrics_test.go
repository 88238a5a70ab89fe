package kafkarec_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/internal/kafkatest"
	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/records"
	"github.com/enc-pipe/enc-pipe/records/kafkarec"
)

// Run reports the pipeline's counts and each partition's lag: a run
// stopped after half the records leaves the other half behind.
func TestKafkaRunReportsCountsAndPartitionLag(t *testing.T) {
	addr := broker(t)
	names := kafkatest.Topics(t, addr, 1, "plain", "enc")
	plain, enc := names[0], names[1]
	f := newFactory(t, memstore.New())
	const n = 400
	produce(t, addr, plain, n, 5)
	m := metrics.NewMemory()
	st, err := kafkarec.Run(ctx, fastGroup(kafkarec.Config{
		Brokers: []string{addr}, From: plain, To: enc, Group: enc + "-g", IdleTimeout: 4 * time.Second, Workers: 2,
		MaxRecords: n / 2, Metrics: m,
		Transform: encrypter(t, f, records.EncryptConfig{Partition: records.HeaderPartition("tenant")}),
	}))
	if err != nil || st.Read != n/2 {
		t.Fatalf("Run: %v, %+v", err, st)
	}
	if got := m.Value(records.MetricWritten); got != st.Written || got != n/2 {
		t.Errorf("%s = %d, Stats say %d", records.MetricWritten, got, st.Written)
	}
	if got := m.Value(records.MetricAcked); got != st.Acked {
		t.Errorf("%s = %d, Stats say %d", records.MetricAcked, got, st.Acked)
	}
	lag := m.Value(kafkarec.MetricPartitionLag, metrics.Label{Name: "partition", Value: strconv.Itoa(0)})
	if lag != n-st.Read {
		t.Errorf("lag of partition 0 = %d, want %d (records produced %d, read %d)", lag, n-st.Read, n, st.Read)
	}
	if got := m.Value(records.MetricLag); got != st.Lag || got != lag {
		t.Errorf("%s = %d, Stats say %d, the partition gauge %d", records.MetricLag, got, st.Lag, lag)
	}
}
