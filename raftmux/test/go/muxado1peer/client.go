package main

// The client role: one scenario per run, one JSON result line.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/inconshreveable/muxado/proto"
	"github.com/inconshreveable/muxado/proto/frame"
)

const ioDeadline = 10 * time.Second

type client struct {
	sess proto.ISession
	tap  *tap

	mu     sync.Mutex
	errors []string
}

func (c *client) fail(format string, args ...interface{}) {
	c.mu.Lock()
	if len(c.errors) < 20 {
		c.errors = append(c.errors, fmt.Sprintf(format, args...))
	}
	c.mu.Unlock()
}

func (c *client) errorCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.errors)
}

func intOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func secondsOr(v, def float64) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v * float64(time.Second))
}

func runClient() int {
	name := *scenarioFlag
	switch {
	case *benchEcho:
		name = "bench-echo"
	case *benchBulk:
		name = "bench-bulk"
	}
	run, ok := scenarios[name]
	if !ok {
		emit(map[string]interface{}{"scenario": name, "ok": false, "error": "unknown scenario"})
		return 2
	}
	conn, err := net.Dial("tcp", *dialFlag)
	if err != nil {
		emit(map[string]interface{}{"scenario": name, "ok": false, "error": err.Error()})
		return 1
	}
	sess, t := newSession(conn, true)
	c := &client{sess: sess, tap: t}
	done := make(chan map[string]interface{}, 1)
	start := time.Now()
	go func() { done <- run(c) }()
	var res map[string]interface{}
	select {
	case res = <-done:
	case <-time.After(*timeoutFlag):
		res = map[string]interface{}{}
		c.fail("timed out after %s", *timeoutFlag)
	}
	res["scenario"] = name
	res["elapsed"] = time.Since(start).Seconds()
	sess.Close()
	waited := make(chan map[string]interface{}, 1)
	go func() {
		code, err, debug := sess.Wait()
		waited <- map[string]interface{}{"sessionCode": uint32(code),
			"sessionError": errText(err), "remoteDebug": string(debug)}
	}()
	select {
	case end := <-waited:
		for k, v := range end {
			res[k] = v
		}
	case <-time.After(2 * time.Second):
	}
	for k, v := range t.stats() {
		res[k] = v
	}
	c.mu.Lock()
	res["errors"] = append([]string{}, c.errors...)
	okay := len(c.errors) == 0
	c.mu.Unlock()
	if v, present := res["ok"]; present {
		okay = okay && v.(bool)
	}
	res["ok"] = okay
	emit(res)
	if okay {
		return 0
	}
	return 1
}

var scenarios = map[string]func(*client) map[string]interface{}{
	"echo":       (*client).echoScenario,
	"bulk":       (*client).bulkScenario,
	"concurrent": (*client).concurrentScenario,
	"halfclose":  (*client).halfCloseScenario,
	"rst":        (*client).rstScenario,
	"goaway":     (*client).goAwayScenario,
	"typed":      (*client).typedScenario,
	"idle":       (*client).idleScenario,
	"accept":     (*client).acceptScenario,
	"bench-echo": (*client).benchEchoScenario,
	"bench-bulk": (*client).benchBulkScenario,
}

// pattern is the verifiable content of bulk streams; '#' first, so a server
// never takes it for a command.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + (i >> 8) + seed*7)
	}
	if n > 0 {
		b[0] = '#'
	}
	return b
}

func readExactly(str proto.IStream, n int) ([]byte, error) {
	str.SetReadDeadline(time.Now().Add(ioDeadline))
	buf := make([]byte, n)
	_, err := io.ReadFull(str, buf)
	return buf, err
}

// expectEOF reads until EOF; extra bytes or another error are a failure.
func expectEOF(str proto.IStream) error {
	str.SetReadDeadline(time.Now().Add(ioDeadline))
	rest, err := ioutil.ReadAll(str)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%d unexpected bytes before EOF", len(rest))
	}
	return nil
}

func (c *client) echoOnce(payload []byte) error {
	str, err := c.sess.Open()
	if err != nil {
		return err
	}
	defer str.Close()
	if _, err := str.Write(payload); err != nil {
		return err
	}
	got, err := readExactly(str, len(payload))
	if err != nil {
		return err
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("echo: sent %q, got %q", payload, got)
	}
	return nil
}

func (c *client) echoScenario() map[string]interface{} {
	n := intOr(*nFlag, 100)
	good := 0
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := c.echoOnce([]byte(fmt.Sprintf("%04d", i%10000))); err != nil {
			c.fail("echo %d: %v", i, err)
		} else {
			good++
		}
	}
	elapsed := time.Since(start).Seconds()
	return map[string]interface{}{"n": n, "echoed": good, "seconds": elapsed,
		"rate": float64(good) / elapsed}
}

// bulk sends size bytes on one stream while reading the echo, half-closes,
// and checks every byte and the final EOF.
func (c *client) bulk(size int) map[string]interface{} {
	str, err := c.sess.Open()
	if err != nil {
		c.fail("open: %v", err)
		return map[string]interface{}{}
	}
	defer str.Close()
	data := pattern(1, size)
	start := time.Now()
	go func() {
		if _, err := str.Write(data); err != nil {
			c.fail("write: %v", err)
			return
		}
		if _, err := str.HalfClose([]byte{}); err != nil {
			c.fail("half-close: %v", err)
		}
	}()
	got := make([]byte, size)
	str.SetReadDeadline(time.Now().Add(*timeoutFlag))
	n, err := io.ReadFull(str, got)
	elapsed := time.Since(start).Seconds()
	if err != nil {
		c.fail("read after %d bytes: %v", n, err)
	} else if !bytes.Equal(got, data) {
		c.fail("echoed content differs")
	} else if err := expectEOF(str); err != nil {
		c.fail("after the echo: %v", err)
	}
	return map[string]interface{}{"bytes": size, "received": n, "seconds": elapsed,
		"mbps": float64(n) / elapsed / 1e6}
}

func (c *client) bulkScenario() map[string]interface{} {
	return c.bulk(intOr(*sizeFlag, 4<<20))
}

func (c *client) benchBulkScenario() map[string]interface{} {
	res := c.bulk(intOr(*sizeFlag, 16<<20))
	res["bench"] = "bulk"
	return res
}

func (c *client) benchEchoScenario() map[string]interface{} {
	duration := secondsOr(*secondsFlag, 5)
	count := 0
	start := time.Now()
	for time.Since(start) < duration {
		if err := c.echoOnce([]byte("ping")); err != nil {
			c.fail("echo %d: %v", count, err)
			break
		}
		count++
	}
	elapsed := time.Since(start).Seconds()
	return map[string]interface{}{"bench": "echo", "count": count, "seconds": elapsed,
		"rate": float64(count) / elapsed}
}

func (c *client) concurrentScenario() map[string]interface{} {
	n := intOr(*nFlag, 32)
	size := intOr(*sizeFlag, 4096)
	var wg sync.WaitGroup
	var mu sync.Mutex
	good := 0
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			str, err := c.sess.Open()
			if err != nil {
				c.fail("open %d: %v", i, err)
				return
			}
			defer str.Close()
			data := pattern(i, size)
			go func() {
				if _, err := str.Write(data); err == nil {
					str.HalfClose([]byte{})
				}
			}()
			got, err := readExactly(str, size)
			if err != nil {
				c.fail("stream %d: %v", i, err)
				return
			}
			if !bytes.Equal(got, data) {
				c.fail("stream %d: echoed content differs", i)
				return
			}
			if err := expectEOF(str); err != nil {
				c.fail("stream %d after the echo: %v", i, err)
				return
			}
			mu.Lock()
			good++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	return map[string]interface{}{"n": n, "size": size, "echoed": good,
		"seconds": time.Since(start).Seconds()}
}

func (c *client) halfCloseScenario() map[string]interface{} {
	str, err := c.sess.Open()
	if err != nil {
		c.fail("open: %v", err)
		return map[string]interface{}{}
	}
	defer str.Close()
	sent := []byte("half-close test")
	if _, err := str.HalfClose(sent); err != nil {
		c.fail("write+FIN: %v", err)
	}
	str.SetReadDeadline(time.Now().Add(ioDeadline))
	got, err := ioutil.ReadAll(str)
	if err != nil {
		c.fail("read to EOF: %v", err)
	} else if !bytes.Equal(got, sent) {
		c.fail("echo before EOF: sent %q, got %q", sent, got)
	}
	_, werr := str.Write([]byte("x"))
	if werr == nil {
		c.fail("a write after our FIN succeeded")
	}
	return map[string]interface{}{"echoed": string(got), "writeAfterFinError": errText(werr)}
}

// rstScenario provokes the two RSTs a Go v1 server sends on its own: an
// unregistered extension stream type, and DATA for a stream it has closed.
func (c *client) rstScenario() map[string]interface{} {
	res := map[string]interface{}{}
	// 1. A stream type in the extension range that nobody registered.
	str, err := c.sess.OpenStream(0, frame.StreamType(0xFFFFFF00), false)
	if err != nil {
		c.fail("open extension stream: %v", err)
		return res
	}
	str.SetReadDeadline(time.Now().Add(ioDeadline))
	_, rerr := str.Read(make([]byte, 16))
	res["extensionReadError"] = errText(rerr)
	code, got := c.tap.rstReceived(uint32(str.Id()))
	if !got || code != 4 {
		c.fail("extension stream: expected RST 4, got %v (%v)", code, got)
	}
	res["extensionRst"] = code
	str.Close()
	// 2. The server Close()s a stream; our next DATA gets RST.
	str, err = c.sess.Open()
	if err != nil {
		c.fail("open: %v", err)
		return res
	}
	defer str.Close()
	if _, err := str.Write([]byte("RST\n")); err != nil {
		c.fail("write command: %v", err)
		return res
	}
	if ok, err := readExactly(str, 3); err != nil || string(ok) != "OK\n" {
		c.fail("command reply: %q %v", ok, err)
		return res
	}
	var werr error
	for deadline := time.Now().Add(ioDeadline); time.Now().Before(deadline); {
		if _, werr = str.Write([]byte("data")); werr != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res["closedStreamWriteError"] = errText(werr)
	code, got = c.tap.rstReceived(uint32(str.Id()))
	if !got || code != 4 {
		c.fail("closed stream: expected RST 4, got %v (%v)", code, got)
	}
	res["closedStreamRst"] = code
	return res
}

// goAwayScenario asks the server for GOAWAY(0, "bye") and checks what a Go
// v1 client must see: opening fails with "remote has gone away", and a
// stream opened before (at or below the last stream ID) still works.
// Against a Go v1 server this fails by design: Go's GOAWAY declares debug
// bytes it never sends, so a Go reader desyncs (spec Appendix A).
func (c *client) goAwayScenario() map[string]interface{} {
	res := map[string]interface{}{}
	a, err := c.sess.Open()
	if err != nil {
		c.fail("open: %v", err)
		return res
	}
	defer a.Close()
	if err := c.echoOn(a, []byte("aaaa")); err != nil {
		c.fail("echo before GOAWAY: %v", err)
		return res
	}
	b, err := c.sess.Open()
	if err != nil {
		c.fail("open: %v", err)
		return res
	}
	if _, err := b.Write([]byte("GOAWAY 0 bye\n")); err != nil {
		c.fail("write command: %v", err)
		return res
	}
	gone := false
	opens := 0
	for deadline := time.Now().Add(ioDeadline); time.Now().Before(deadline); {
		s, err := c.sess.Open()
		if err != nil {
			gone = strings.Contains(err.Error(), "gone away")
			res["openError"] = err.Error()
			break
		}
		opens++
		s.Close()
		time.Sleep(20 * time.Millisecond)
	}
	res["remoteGoneAway"] = gone
	res["opensBeforeRefusal"] = opens
	if !gone {
		c.fail("OpenStream never reported the remote gone away")
	}
	if err := c.echoOn(a, []byte("bbbb")); err != nil {
		c.fail("echo on the earlier stream after GOAWAY: %v", err)
		res["existingStreamWorks"] = false
	} else {
		res["existingStreamWorks"] = true
	}
	return res
}

func (c *client) echoOn(str proto.IStream, payload []byte) error {
	if _, err := str.Write(payload); err != nil {
		return err
	}
	got, err := readExactly(str, len(payload))
	if err != nil {
		return err
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("sent %q, got %q", payload, got)
	}
	return nil
}

type typedCase struct {
	priority, streamType uint32
	fin                  bool
}

// typedScenario opens streams with OpenStream(priority, type, fin) and checks
// the server's (type, priority) reply.  fin=true shows Go's backwards FIN:
// the opener's own reads end at once while its writes still go through.
func (c *client) typedScenario() map[string]interface{} {
	cases := []typedCase{
		{0, 1, false}, {7, 0x1234, false}, {0x7FFFFFFF, 0xFFFFFEFE, false},
		{5, 0, false}, {3, 0x42, true},
	}
	results := []map[string]interface{}{}
	for _, tc := range cases {
		r := map[string]interface{}{"priority": tc.priority, "type": tc.streamType, "fin": tc.fin}
		results = append(results, r)
		str, err := c.sess.OpenStream(frame.StreamPriority(tc.priority),
			frame.StreamType(tc.streamType), tc.fin)
		if err != nil {
			c.fail("open %v: %v", tc, err)
			continue
		}
		switch {
		case tc.fin:
			n, rerr := str.Read(make([]byte, 8))
			_, werr := str.Write([]byte("one-way"))
			r["readAtOnce"] = errText(rerr)
			r["writeError"] = errText(werr)
			if n != 0 || rerr != io.EOF || werr != nil {
				c.fail("fin case: read %d %v, write %v", n, rerr, werr)
			}
		case tc.streamType != 0:
			reply, err := readExactly(str, 8)
			if err != nil {
				c.fail("typed %v: %v", tc, err)
				break
			}
			gotType := binary.BigEndian.Uint32(reply[0:])
			gotPriority := binary.BigEndian.Uint32(reply[4:])
			r["serverSawType"] = gotType
			r["serverSawPriority"] = gotPriority
			if gotType != tc.streamType || gotPriority != tc.priority {
				c.fail("typed %v: server saw type %d priority %d", tc, gotType, gotPriority)
			}
			if err := c.echoOn(str, []byte("typed")); err != nil {
				c.fail("typed %v echo: %v", tc, err)
			}
		default:
			if err := c.echoOn(str, []byte("prio")); err != nil {
				c.fail("untyped %v echo: %v", tc, err)
			}
		}
		str.Close()
	}
	return map[string]interface{}{"cases": results}
}

// idleScenario stays idle, relying on heartbeats, then does one echo.
func (c *client) idleScenario() map[string]interface{} {
	idle := secondsOr(*secondsFlag, 5)
	time.Sleep(idle)
	err := c.echoOnce([]byte("idle"))
	if err != nil {
		c.fail("echo after %s idle: %v", idle, err)
	}
	stats := c.tap.stats()
	if !*noHB && !*noHBEcho && idle >= 2*(*hbInterval) {
		if stats["heartbeatEchoesReceived"].(int) < 1 {
			c.fail("no heartbeat echo in %s", idle)
		}
	}
	return map[string]interface{}{"idleSeconds": idle.Seconds()}
}

// acceptScenario asks the server to open n streams (OPEN n type priority),
// accepts them, and checks type, priority, greeting and echo on each.
func (c *client) acceptScenario() map[string]interface{} {
	n := intOr(*nFlag, 3)
	typ, pri := uint32(*typeFlag), uint32(*priorityFlag)
	ctl, err := c.sess.Open()
	if err != nil {
		c.fail("open: %v", err)
		return map[string]interface{}{}
	}
	defer ctl.Close()
	if _, err := ctl.Write([]byte(fmt.Sprintf("OPEN %d %d %d\n", n, typ, pri))); err != nil {
		c.fail("write command: %v", err)
	}
	if ok, err := readExactly(ctl, 3); err != nil || string(ok) != "OK\n" {
		c.fail("command reply: %q %v", ok, err)
	}
	accepted := 0
	ids := []uint32{}
	for i := 0; i < n; i++ {
		got := make(chan proto.IStream, 1)
		go func() {
			str, err := c.sess.Accept()
			if err != nil {
				c.fail("accept: %v", err)
				got <- nil
				return
			}
			got <- str
		}()
		var str proto.IStream
		select {
		case str = <-got:
		case <-time.After(ioDeadline):
			c.fail("accept %d timed out", i)
		}
		if str == nil {
			break
		}
		ids = append(ids, uint32(str.Id()))
		info, _ := c.tap.remoteSyn(uint32(str.Id()))
		if uint32(str.StreamType()) != typ || info.Priority != pri {
			c.fail("stream %d: type %d priority %d", str.Id(), str.StreamType(), info.Priority)
		}
		hello, err := readExactly(str, len("hello from go\n"))
		if err != nil || string(hello) != "hello from go\n" {
			c.fail("stream %d greeting: %q %v", str.Id(), hello, err)
		} else if err := c.echoOn(str, []byte(fmt.Sprintf("probe-%d", i))); err != nil {
			c.fail("stream %d echo: %v", str.Id(), err)
		} else {
			accepted++
		}
		str.Close()
	}
	return map[string]interface{}{"n": n, "accepted": accepted, "ids": ids}
}
