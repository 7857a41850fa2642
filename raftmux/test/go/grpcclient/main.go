// grpcclient: a grpc-go (Debian's golang-google-grpc-dev) client for
// raftmux's gRPC interop tests.  It dials one address (plain h2c, or TLS
// with -ca), runs a fixed list of calls against the health service and
// etcd's KV and Watch, and prints one JSON object per call:
//
//	{"call": "<name>", "code": "<grpc code>", "message": "...", "value": "..."}
//
// The exit status is 0 whenever the calls could be made at all; the test
// judges the results.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"time"

	"go.etcd.io/etcd/etcdserver/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

var (
	addrFlag = flag.String("addr", "", "host:port to dial")
	caFlag   = flag.String("ca", "", "PEM CA file: dial with TLS (ALPN h2)")
	nameFlag = flag.String("servername", "localhost", "TLS server name")
)

type result struct {
	Call    string `json:"call"`
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
	Value   string `json:"value,omitempty"`
}

func report(call string, err error, value string) {
	r := result{Call: call, Code: "OK", Value: value}
	if err != nil {
		s, _ := status.FromError(err)
		r.Code = s.Code().String()
		r.Message = s.Message()
	}
	line, _ := json.Marshal(r)
	fmt.Println(string(line))
}

func main() {
	flag.Parse()
	opts := []grpc.DialOption{grpc.WithBlock()}
	if *caFlag != "" {
		pem, err := ioutil.ReadFile(*caFlag)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(
			&tls.Config{RootCAs: pool, ServerName: *nameFlag})))
	} else {
		opts = append(opts, grpc.WithInsecure())
	}
	dialCtx, cancelDial := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelDial()
	conn, err := grpc.DialContext(dialCtx, *addrFlag, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(2)
	}
	defer conn.Close()
	ctx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 10*time.Second)
	}

	health := healthpb.NewHealthClient(conn)
	{
		c, cancel := ctx()
		r, err := health.Check(c, &healthpb.HealthCheckRequest{})
		cancel()
		value := ""
		if err == nil {
			value = r.Status.String()
		}
		report("health.check", err, value)
	}
	{
		c, cancel := ctx()
		_, err := health.Check(c, &healthpb.HealthCheckRequest{Service: "no.such.Service"})
		cancel()
		report("health.check.unknown", err, "")
	}
	{
		c, cancel := ctx()
		w, err := health.Watch(c, &healthpb.HealthCheckRequest{})
		value := ""
		if err == nil {
			var r *healthpb.HealthCheckResponse
			r, err = w.Recv()
			if err == nil {
				value = r.Status.String()
			}
		}
		cancel()
		report("health.watch", err, value)
	}

	kv := etcdserverpb.NewKVClient(conn)
	{
		c, cancel := ctx()
		// etcd's "hasleader" metadata, as clientv3.WithRequireLeader sends it.
		c = metadata.AppendToOutgoingContext(c, "hasleader", "true", "trace-bin", "\x00\x01\xff")
		_, err := kv.Put(c, &etcdserverpb.PutRequest{Key: []byte("go-key"), Value: []byte("go-value")})
		cancel()
		report("kv.put", err, "")
	}
	{
		c, cancel := ctx()
		r, err := kv.Range(c, &etcdserverpb.RangeRequest{Key: []byte("go-key"), Serializable: true})
		cancel()
		value := ""
		if err == nil && len(r.Kvs) == 1 {
			value = string(r.Kvs[0].Value)
		}
		report("kv.range", err, value)
	}
	{
		c, cancel := ctx()
		_, err := kv.Put(c, &etcdserverpb.PutRequest{})
		cancel()
		report("kv.put.empty", err, "")
	}
	{
		// A linearizable read: the test's node holds every one, so the deadline passes.
		c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := kv.Range(c, &etcdserverpb.RangeRequest{Key: []byte("held")})
		cancel()
		report("kv.range.deadline", err, "")
	}
	{
		c, cancel := ctx()
		err := conn.Invoke(c, "/etcdserverpb.KV/NoSuchMethod", &etcdserverpb.RangeRequest{},
			&etcdserverpb.RangeResponse{})
		cancel()
		report("kv.unknown", err, "")
	}
	{
		c, cancel := ctx()
		w, err := etcdserverpb.NewWatchClient(conn).Watch(c)
		value := ""
		if err == nil {
			err = w.Send(&etcdserverpb.WatchRequest{RequestUnion: &etcdserverpb.WatchRequest_CreateRequest{
				CreateRequest: &etcdserverpb.WatchCreateRequest{Key: []byte("go-watched")}}})
		}
		var r *etcdserverpb.WatchResponse
		if err == nil {
			r, err = w.Recv()
		}
		if err == nil && r.Created {
			c2, cancel2 := ctx()
			_, err = kv.Put(c2, &etcdserverpb.PutRequest{Key: []byte("go-watched"), Value: []byte("seen")})
			cancel2()
		}
		if err == nil {
			r, err = w.Recv()
		}
		if err == nil && len(r.Events) == 1 {
			value = string(r.Events[0].Kv.Value)
		}
		cancel()
		report("watch", err, value)
	}
}
