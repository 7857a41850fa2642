// etcdclient: etcd's own Go client (clientv3, etcd 3.4 as Debian ships it)
// against any etcd v3 gRPC endpoint, for raftmux's interop test and its
// etcd benchmark.  The same binary runs against raftmux members and real
// etcd members, so the two are driven exactly alike.
//
//	etcdclient check --endpoints URL,URL,URL [--prefix P] [--max-keys N] [--timeout D]
//
// Checks puts, gets, a txn, a watch, a lease, then writes keys one after
// another, printing "ACK <i>" once each put is acknowledged, until a line
// "stop" (or EOF) arrives on stdin or --max-keys are acknowledged.  A put
// that fails is retried (same key, same value) until acknowledged, so the
// caller may kill a member meanwhile.  Then every endpoint, on its own, must
// return every acknowledged key with its value from a linearizable range:
// "VERIFIED <endpoint> <n>" each, "LOST ..." and exit status 1 otherwise.
// Each step prints "OK <step>"; any failure prints "FAIL <why>" and exits 1.
//
//	etcdclient bench --endpoint URL --phase put|get|getser [--clients 64]
//	                 [--value-size 100] [--keyspace 1000] [--warmup D] [--duration D]
//
// --clients goroutines, each with its own client (its own connection) and
// one request outstanding, on keys bench-0 .. bench-<keyspace-1> round-robin;
// put writes values of --value-size bytes, get is a linearizable single-key
// range, getser a serializable one.  Prints one JSON line: ops, perSecond,
// p50 and p99 (ms) over the measured --duration after --warmup, errors.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/mvcc/mvccpb"
	"google.golang.org/grpc/grpclog"
)

func main() {
	// grpc-go's own chatter (reconnects while a member is down) is noise here.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(ioutil.Discard, ioutil.Discard, os.Stderr))
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: etcdclient check|bench [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "check":
		check(os.Args[2:])
	case "bench":
		bench(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

func newClient(endpoints []string) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		fail("client for %v: %v", endpoints, err)
	}
	return c
}

// -- check -------------------------------------------------------------------

func check(args []string) {
	flags := flag.NewFlagSet("check", flag.ExitOnError)
	endpoints := flags.String("endpoints", "", "comma-separated client URLs")
	prefix := flags.String("prefix", "etcdclient", "key prefix")
	maxKeys := flags.Int("max-keys", 5000, "stop writing after this many acknowledged keys")
	timeout := flags.Duration("timeout", 50*time.Second, "the whole run's bound")
	flags.Parse(args)
	eps := strings.Split(*endpoints, ",")
	deadline := time.Now().Add(*timeout)
	c := newClient(eps)
	defer c.Close()

	checkKV(c, *prefix+"/kv/")
	fmt.Println("OK kv")
	checkTxn(c, *prefix+"/txn/")
	fmt.Println("OK txn")
	checkWatch(c, *prefix+"/watch/")
	fmt.Println("OK watch")
	checkLease(c, *prefix+"/lease/")
	fmt.Println("OK lease")

	acked, retried := writeUntilStopped(c, *prefix+"/w/", *maxKeys, deadline)
	fmt.Printf("OK write %d acknowledged, %d failed puts retried\n", acked, retried)
	lost := false
	for _, ep := range eps {
		n, missing := verify(ep, *prefix+"/w/", acked, deadline)
		if len(missing) > 0 {
			lost = true
			fmt.Printf("LOST %s %d of %d, e.g. %s\n", ep, len(missing), acked, missing[0])
		} else {
			fmt.Printf("VERIFIED %s %d\n", ep, n)
		}
	}
	if lost {
		os.Exit(1)
	}
	fmt.Println("OK verify")
}

func ctx5() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

func checkKV(c *clientv3.Client, p string) {
	ctx, cancel := ctx5()
	defer cancel()
	put, err := c.Put(ctx, p+"a", "1")
	if err != nil {
		fail("put: %v", err)
	}
	if _, err = c.Put(ctx, p+"b", "2"); err != nil {
		fail("put: %v", err)
	}
	got, err := c.Get(ctx, p+"a")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "1" {
		fail("get %sa: %v %v", p, got, err)
	}
	if got.Kvs[0].ModRevision != put.Header.Revision {
		fail("get %sa: mod revision %d, put's revision %d", p, got.Kvs[0].ModRevision,
			put.Header.Revision)
	}
	all, err := c.Get(ctx, p, clientv3.WithPrefix())
	if err != nil || all.Count != 2 || len(all.Kvs) != 2 || string(all.Kvs[1].Value) != "2" {
		fail("get prefix %s: %v %v", p, all, err)
	}
	old, err := c.Get(ctx, p+"a", clientv3.WithRev(put.Header.Revision-1))
	if err != nil || len(old.Kvs) != 0 {
		fail("get %sa before it was put: %v %v", p, old, err)
	}
	ser, err := c.Get(ctx, p+"b", clientv3.WithSerializable())
	if err != nil || len(ser.Kvs) > 1 {
		fail("serializable get: %v %v", ser, err)
	}
	del, err := c.Delete(ctx, p, clientv3.WithPrefix())
	if err != nil || del.Deleted != 2 {
		fail("delete prefix: %v %v", del, err)
	}
	gone, err := c.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || gone.Count != 0 {
		fail("after delete: %v %v", gone, err)
	}
}

func checkTxn(c *clientv3.Client, p string) {
	ctx, cancel := ctx5()
	defer cancel()
	if _, err := c.Put(ctx, p+"k", "old"); err != nil {
		fail("put: %v", err)
	}
	swap, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(p+"k"), "=", "old")).
		Then(clientv3.OpPut(p+"k", "new"), clientv3.OpPut(p+"other", "x")).
		Else(clientv3.OpGet(p + "k")).Commit()
	if err != nil || !swap.Succeeded || len(swap.Responses) != 2 {
		fail("txn compare-and-swap: %v %v", swap, err)
	}
	again, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(p+"k"), "=", "old")).
		Then(clientv3.OpPut(p+"k", "newer")).
		Else(clientv3.OpGet(p + "k")).Commit()
	if err != nil || again.Succeeded || len(again.Responses) != 1 {
		fail("txn else branch: %v %v", again, err)
	}
	kvs := again.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 || string(kvs[0].Value) != "new" {
		fail("txn else branch read %v", kvs)
	}
	if kvs[0].ModRevision != swap.Header.Revision {
		fail("txn: both puts at one revision %d, read %d", swap.Header.Revision, kvs[0].ModRevision)
	}
}

func checkWatch(c *clientv3.Client, p string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start, err := c.Get(ctx, "any")
	if err != nil {
		fail("get: %v", err)
	}
	events := c.Watch(ctx, p, clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1))
	if _, err := c.Put(ctx, p+"1", "a"); err != nil {
		fail("put: %v", err)
	}
	if _, err := c.Put(ctx, p+"2", "b"); err != nil {
		fail("put: %v", err)
	}
	if _, err := c.Delete(ctx, p+"1"); err != nil {
		fail("delete: %v", err)
	}
	// Events after the watch was created, arriving as they happen.
	later, err := c.Put(ctx, p+"3", "c")
	if err != nil {
		fail("put: %v", err)
	}
	want := []string{"PUT 1 a", "PUT 2 b", "DELETE 1 ", "PUT 3 c"}
	var seen []string
	var lastRev int64
	for len(seen) < len(want) {
		select {
		case resp, ok := <-events:
			if !ok {
				fail("watch ended after %v: %v", seen, ctx.Err())
			}
			if err := resp.Err(); err != nil {
				fail("watch: %v", err)
			}
			for _, ev := range resp.Events {
				kind := "PUT"
				if ev.Type == mvccpb.DELETE {
					kind = "DELETE"
				}
				if ev.Kv.ModRevision <= lastRev {
					fail("watch: revision %d after %d", ev.Kv.ModRevision, lastRev)
				}
				lastRev = ev.Kv.ModRevision
				seen = append(seen, fmt.Sprintf("%s %s %s", kind,
					strings.TrimPrefix(string(ev.Kv.Key), p), ev.Kv.Value))
			}
		case <-ctx.Done():
			fail("watch: saw %v, want %v", seen, want)
		}
	}
	if strings.Join(seen, ",") != strings.Join(want, ",") || lastRev != later.Header.Revision {
		fail("watch: saw %v (last at %d), want %v (last at %d)", seen, lastRev, want,
			later.Header.Revision)
	}
}

func checkLease(c *clientv3.Client, p string) {
	ctx, cancel := ctx5()
	defer cancel()
	grant, err := c.Grant(ctx, 30)
	if err != nil || grant.TTL <= 0 {
		fail("lease grant: %v %v", grant, err)
	}
	if _, err := c.Put(ctx, p+"k", "leased", clientv3.WithLease(grant.ID)); err != nil {
		fail("put with lease: %v", err)
	}
	got, err := c.Get(ctx, p+"k")
	if err != nil || len(got.Kvs) != 1 || clientv3.LeaseID(got.Kvs[0].Lease) != grant.ID {
		fail("get leased key: %v %v", got, err)
	}
	ka, err := c.KeepAliveOnce(ctx, grant.ID)
	if err != nil || ka.ID != grant.ID || ka.TTL <= 0 {
		fail("keepalive once: %v %v", ka, err)
	}
	ttl, err := c.TimeToLive(ctx, grant.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL <= 0 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != p+"k" {
		fail("time to live: %v %v", ttl, err)
	}
	if _, err := c.Revoke(ctx, grant.ID); err != nil {
		fail("revoke: %v", err)
	}
	gone, err := c.Get(ctx, p+"k")
	if err != nil || len(gone.Kvs) != 0 {
		fail("leased key after revoke: %v %v", gone, err)
	}
	if _, err := c.KeepAliveOnce(ctx, grant.ID); err == nil {
		fail("keepalive of a revoked lease succeeded")
	}
}

func wkey(p string, i int) string { return fmt.Sprintf("%s%06d", p, i) }
func wvalue(i int) string         { return fmt.Sprintf("value-%06d", i) }

// writeUntilStopped puts keys one after another, each retried until it is
// acknowledged, until stdin says stop; it returns how many were, and how
// many puts failed on the way.
func writeUntilStopped(c *clientv3.Client, p string, maxKeys int, deadline time.Time) (int, int) {
	stop := make(chan struct{})
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			if strings.TrimSpace(scanner.Text()) == "stop" {
				break
			}
		}
		close(stop)
	}()
	fmt.Println("WRITING")
	failures := 0
	for i := 0; i < maxKeys; {
		select {
		case <-stop:
			return i, failures
		default:
		}
		if time.Now().After(deadline) {
			fail("writing: out of time after %d keys", i)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := c.Put(ctx, wkey(p, i), wvalue(i))
		cancel()
		if err != nil {
			failures++
			fmt.Fprintf(os.Stderr, "put %d: %v\n", i, err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		fmt.Printf("ACK %d\n", i)
		i++
	}
	return maxKeys, failures
}

// verify reads the written keys back from one endpoint alone (retrying
// while it is unreachable or catching up) and names the acknowledged ones
// missing or wrong.
func verify(ep, p string, acked int, deadline time.Time) (int, []string) {
	c := newClient([]string{ep})
	defer c.Close()
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := ctx5()
		got, err := c.Get(ctx, p, clientv3.WithPrefix())
		cancel()
		if err != nil {
			lastErr = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		have := make(map[string]string, len(got.Kvs))
		for _, kv := range got.Kvs {
			have[string(kv.Key)] = string(kv.Value)
		}
		var missing []string
		for i := 0; i < acked; i++ {
			if v, ok := have[wkey(p, i)]; !ok || v != wvalue(i) {
				missing = append(missing, fmt.Sprintf("%s=%q", wkey(p, i), v))
			}
		}
		return len(got.Kvs), missing
	}
	fail("verify on %s: %v", ep, lastErr)
	return 0, nil
}

// -- bench -------------------------------------------------------------------

type phaseResult struct {
	Phase       string  `json:"phase"`
	Endpoint    string  `json:"endpoint"`
	Clients     int     `json:"clients"`
	Ops         int     `json:"ops"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"perSecond"`
	P50         float64 `json:"p50"`
	P99         float64 `json:"p99"`
	Errors      int64   `json:"errors"`
	ErrorSample string  `json:"errorSample"`
}

func bench(args []string) {
	flags := flag.NewFlagSet("bench", flag.ExitOnError)
	endpoint := flags.String("endpoint", "", "the client URL every client talks to")
	phase := flags.String("phase", "put", "put, get (linearizable) or getser (serializable)")
	clients := flags.Int("clients", 64, "concurrent clients, one connection and one request each")
	valueSize := flags.Int("value-size", 100, "bytes per value")
	keyspace := flags.Int("keyspace", 1000, "keys bench-0 .. bench-<n-1>")
	warmup := flags.Duration("warmup", time.Second, "unmeasured run-in")
	duration := flags.Duration("duration", 10*time.Second, "measured time")
	flags.Parse(args)
	if *phase != "put" && *phase != "get" && *phase != "getser" {
		fail("unknown phase %q", *phase)
	}

	conns := make([]*clientv3.Client, *clients)
	for i := range conns {
		conns[i] = newClient([]string{*endpoint})
		defer conns[i].Close()
	}
	value := strings.Repeat("x", *valueSize)
	var next uint64
	var errors int64
	var sample atomic.Value
	start := time.Now()
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*duration)
	latencies := make([][]time.Duration, *clients)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := conns[i]
			var mine []time.Duration
			for {
				before := time.Now()
				if before.After(end) {
					break
				}
				key := fmt.Sprintf("bench-%d", atomic.AddUint64(&next, 1)%uint64(*keyspace))
				ctx, cancel := ctx5()
				var err error
				switch *phase {
				case "put":
					_, err = c.Put(ctx, key, value)
				case "get":
					var r *clientv3.GetResponse
					r, err = c.Get(ctx, key)
					if err == nil && len(r.Kvs) != 1 {
						err = fmt.Errorf("%s: not found (run the put phase first)", key)
					}
				case "getser":
					var r *clientv3.GetResponse
					r, err = c.Get(ctx, key, clientv3.WithSerializable())
					if err == nil && len(r.Kvs) != 1 {
						err = fmt.Errorf("%s: not found (run the put phase first)", key)
					}
				}
				cancel()
				after := time.Now()
				if err != nil {
					atomic.AddInt64(&errors, 1)
					sample.Store(err.Error())
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if before.After(measureFrom) && !after.After(end) {
					mine = append(mine, after.Sub(before))
				}
			}
			latencies[i] = mine
		}(i)
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	r := phaseResult{Phase: *phase, Endpoint: *endpoint, Clients: *clients, Ops: len(all),
		Seconds: duration.Seconds(), Errors: atomic.LoadInt64(&errors)}
	r.PerSecond = float64(len(all)) / duration.Seconds()
	if len(all) > 0 {
		r.P50 = ms(all[len(all)*50/100])
		r.P99 = ms(all[len(all)*99/100])
	}
	if s, ok := sample.Load().(string); ok {
		r.ErrorSample = s
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000.0 }
