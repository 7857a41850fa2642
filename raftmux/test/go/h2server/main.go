// h2server: a Go net/http server speaking HTTP/2 (h2c with prior knowledge,
// or TLS with ALPN h2), for raftmux's H2Agent interop tests.
//
// It prints "listening <port>" once it serves.  Routes:
//
//	/hello          "hello from go"
//	/echo           the request body, streamed back as it arrives
//	/big?n=N        N bytes of 'x', written in 16 KiB pieces; /written says how
//	                many the handler got past so far (it blocks on flow control)
//	/written        the /big handler's count
//	/hold           waits until the client goes away (cancellation, timeouts)
//	/headers        the request's method, proto and headers as text
//	/trailers       a body, then trailers x-trailer-one and x-trailer-two
//	/status/NNN     an empty answer with status NNN
//	/goaway         answers after asking the server to shut down gracefully
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

var written int64

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	certFile := flag.String("cert", "", "TLS certificate (PEM); with -key, serve TLS with ALPN h2")
	keyFile := flag.String("key", "", "TLS private key (PEM)")
	maxStreams := flag.Uint("maxstreams", 250, "SETTINGS_MAX_CONCURRENT_STREAMS")
	flag.Parse()

	h2 := &http2.Server{MaxConcurrentStreams: uint32(*maxStreams)}
	server := &http.Server{}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from go")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		flusher := w.(http.Flusher)
		buf := make([]byte, 32*1024)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				flusher.Flush()
			}
			if err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		atomic.StoreInt64(&written, 0)
		w.Header().Set("content-length", strconv.Itoa(n))
		piece := make([]byte, 16*1024)
		for i := range piece {
			piece[i] = 'x'
		}
		for n > 0 {
			k := len(piece)
			if n < k {
				k = n
			}
			if _, err := w.Write(piece[:k]); err != nil {
				return
			}
			n -= k
			atomic.AddInt64(&written, int64(k))
		}
	})
	mux.HandleFunc("/written", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d", atomic.LoadInt64(&written))
	})
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(60 * time.Second):
		}
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		var lines []string
		for name, values := range r.Header {
			lines = append(lines, strings.ToLower(name)+": "+strings.Join(values, ","))
		}
		sort.Strings(lines)
		fmt.Fprintf(w, "%s %s %s\n%s\n", r.Method, r.Proto, r.Host, strings.Join(lines, "\n"))
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Trailer-One, X-Trailer-Two")
		io.WriteString(w, "body before trailers")
		w.Header().Set("X-Trailer-One", "1")
		w.Header().Set("X-Trailer-Two", "2")
	})
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if err != nil {
			code = 400
		}
		w.WriteHeader(code)
	})
	mux.HandleFunc("/goaway", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "going away")
		go server.Shutdown(context.Background())
	})

	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening %d\n", listener.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	if *certFile != "" {
		server.Handler = mux
		server.TLSConfig = &tls.Config{NextProtos: []string{"h2"}}
		if err := http2.ConfigureServer(server, h2); err != nil {
			log.Fatal(err)
		}
		err = server.ServeTLS(listener, *certFile, *keyFile)
	} else {
		server.Handler = h2c.NewHandler(mux, h2)
		err = server.Serve(listener)
	}
	if err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
