// Command kfake runs franz-go's in-memory fake Kafka cluster on loopback
// ports for enc-pipe's integration tests. It stops on SIGTERM or SIGINT.
//
//	kfake -ports 19092 -partitions 4
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	portsFlag := flag.String("ports", "19092", "comma-separated broker ports on 127.0.0.1 (one broker per port)")
	partitions := flag.Int("partitions", 4, "default number of partitions of auto-created topics")
	minSession := flag.Duration("min-session-timeout", 100*time.Millisecond, "lowest group session timeout accepted")
	maxMessage := flag.Int("max-message-bytes", 8<<20, "broker message.max.bytes")
	flag.Parse()
	if err := run(*portsFlag, *partitions, *minSession, *maxMessage); err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
}

func run(portsFlag string, partitions int, minSession time.Duration, maxMessage int) error {
	var ports []int
	for _, p := range strings.Split(portsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("bad port %q", p)
		}
		ports = append(ports, n)
	}
	if partitions < 1 {
		return fmt.Errorf("partitions must be at least 1, got %d", partitions)
	}
	c, err := kfake.NewCluster(
		kfake.Ports(ports...),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(partitions),
		kfake.GroupMinSessionTimeout(minSession),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(maxMessage)}),
	)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println("listening", strings.Join(c.ListenAddrs(), ","))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	return nil
}
