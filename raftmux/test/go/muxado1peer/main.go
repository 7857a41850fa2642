// muxado1peer: a test peer for raftmux, built on the generation-1 Go muxado
// library that Debian ships (github.com/inconshreveable/muxado, proto/).
//
// Two roles, chosen by flags; every line on stdout is one JSON object.
//
//	muxado1peer -serve [-listen 127.0.0.1:0]
//	    prints {"listening": port}, then serves muxado v1 sessions: every
//	    stream the client opens is echoed until its EOF and then closed; a
//	    typed stream first gets 8 bytes (type, priority, u32 BE); an untyped
//	    stream whose first line is a command runs it (see runCommand).
//	muxado1peer -dial host:port -scenario NAME [-n N] [-size BYTES] [-seconds S]
//	    runs one client scenario and prints {"scenario": NAME, "ok": ...}.
//	muxado1peer -dial host:port -bench-echo -seconds S
//	muxado1peer -dial host:port -bench-bulk -size BYTES
//
// Heartbeat flags (both roles): -heartbeat-interval, -heartbeat-tolerance
// (the library's 3s/10s by default), -noheartbeat-echo (accept the peer's
// heartbeat stream but never echo, and send no heartbeats of our own),
// -noheartbeat (no heartbeat extension at all: the peer's heartbeat stream
// gets RST StreamClosed, as any unregistered extension type does).
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/inconshreveable/muxado/proto"
	"github.com/inconshreveable/muxado/proto/ext"
	"github.com/inconshreveable/muxado/proto/frame"
)

var (
	serveFlag     = flag.Bool("serve", false, "run the server role")
	listenFlag    = flag.String("listen", "127.0.0.1:0", "server: address to listen on")
	dialFlag      = flag.String("dial", "", "client: host:port to dial")
	scenarioFlag  = flag.String("scenario", "", "client: scenario to run")
	nFlag         = flag.Int("n", 0, "client: count (streams, iterations); 0 = the scenario's default")
	sizeFlag      = flag.Int("size", 0, "client: bytes; 0 = the scenario's default")
	secondsFlag   = flag.Float64("seconds", 0, "client: duration; 0 = the scenario's default")
	typeFlag      = flag.Uint("type", 7, "client accept: stream type the server is asked to open with")
	priorityFlag  = flag.Uint("priority", 9, "client accept: priority the server is asked to open with")
	timeoutFlag   = flag.Duration("timeout", 60*time.Second, "client: give up after this long")
	benchEcho     = flag.Bool("bench-echo", false, "client: open+echo+close for -seconds, print the rate")
	benchBulk     = flag.Bool("bench-bulk", false, "client: -size bytes each way on one stream, print MB/s")
	hbInterval    = flag.Duration("heartbeat-interval", 3*time.Second, "heartbeat interval")
	hbTolerance   = flag.Duration("heartbeat-tolerance", 10*time.Second, "heartbeat tolerance")
	noHBEcho      = flag.Bool("noheartbeat-echo", false, "accept the peer's heartbeat stream, never echo")
	noHB          = flag.Bool("noheartbeat", false, "no heartbeat extension at all")
	traceFlag     = flag.Bool("trace", false, "print every frame header on stderr")
	stdinExitFlag = flag.Bool("exit-on-stdin-eof", false, "exit when stdin reaches EOF (for test harnesses)")
)

var outMu sync.Mutex

// emit prints one JSON line on stdout.
func emit(v map[string]interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(fmt.Sprintf("{\"error\":%q}", err.Error()))
	}
	outMu.Lock()
	os.Stdout.Write(append(b, '\n'))
	outMu.Unlock()
}

// silentHeartbeat takes the heartbeat extension's stream type, accepts the
// peer's heartbeat streams and reads them, and never echoes.
type silentHeartbeat struct{}

func (silentHeartbeat) Start(sess proto.ISession, accept proto.ExtAccept) frame.StreamType {
	go func() {
		for {
			str, err := accept()
			if err != nil {
				return
			}
			go io.Copy(ioutil.Discard, str)
		}
	}()
	return frame.StreamType(proto.MinExtensionType)
}

func newSession(conn net.Conn, client bool) (proto.ISession, *tap) {
	t := newTap(conn, *traceFlag)
	var exts []proto.Extension
	switch {
	case *noHB:
	case *noHBEcho:
		exts = []proto.Extension{silentHeartbeat{}}
	default:
		exts = []proto.Extension{ext.NewHeartbeat(*hbInterval, *hbTolerance)}
	}
	return proto.NewSession(t, proto.NewStream, client, exts), t
}

func main() {
	flag.Parse()
	if *stdinExitFlag {
		go func() {
			io.Copy(ioutil.Discard, os.Stdin)
			os.Exit(0)
		}()
	}
	switch {
	case *serveFlag:
		serve()
	case *dialFlag != "":
		os.Exit(runClient())
	default:
		fmt.Fprintln(os.Stderr, "muxado1peer: give -serve or -dial host:port")
		flag.Usage()
		os.Exit(2)
	}
}

// -- server ---------------------------------------------------------------------

func serve() {
	l, err := net.Listen("tcp", *listenFlag)
	if err != nil {
		emit(map[string]interface{}{"error": err.Error()})
		os.Exit(1)
	}
	emit(map[string]interface{}{"listening": l.Addr().(*net.TCPAddr).Port})
	for {
		conn, err := l.Accept()
		if err != nil {
			emit(map[string]interface{}{"error": err.Error()})
			os.Exit(1)
		}
		go serveSession(conn)
	}
}

func serveSession(conn net.Conn) {
	sess, t := newSession(conn, false)
	remote := conn.RemoteAddr().String()
	emit(map[string]interface{}{"event": "session", "remote": remote})
	go func() {
		code, err, debug := sess.Wait()
		line := t.stats()
		line["event"] = "session-end"
		line["remote"] = remote
		line["code"] = uint32(code)
		line["error"] = errText(err)
		line["remoteDebug"] = string(debug)
		emit(line)
	}()
	for {
		str, err := sess.Accept()
		if err != nil {
			return
		}
		go serveStream(sess, t, str)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func serveStream(sess proto.ISession, t *tap, str proto.IStream) {
	streamType := uint32(str.StreamType())
	if streamType != 0 {
		info, _ := t.remoteSyn(uint32(str.Id()))
		var reply [8]byte
		binary.BigEndian.PutUint32(reply[0:], streamType)
		binary.BigEndian.PutUint32(reply[4:], info.Priority)
		if _, err := str.Write(reply[:]); err != nil {
			// Go's backwards FIN-on-SYN: the opener's SYN|FIN closed our
			// send half.  Read what it sends, then close.
			io.Copy(ioutil.Discard, str)
			str.Close()
			return
		}
		echo(str, nil)
		return
	}
	buf := make([]byte, 32*1024)
	n, err := str.Read(buf)
	first := buf[:n]
	if err == nil && startsLikeCommand(first) {
		for !containsNewline(first) && len(first) < 1024 {
			m, err2 := str.Read(buf[len(first):])
			first = buf[:len(first)+m]
			if err2 != nil {
				break
			}
		}
		if i := strings.IndexByte(string(first), '\n'); i >= 0 {
			if handled, keep := runCommand(sess, str, string(first[:i])); handled {
				if keep {
					echo(str, first[i+1:])
				}
				return
			}
		}
	}
	if err != nil {
		str.Close()
		return
	}
	echo(str, first)
}

var commandWords = []string{"OPEN ", "GOAWAY", "CLOSE", "KILL", "RST"}

func startsLikeCommand(b []byte) bool {
	for _, w := range commandWords {
		n := len(w)
		if len(b) < n {
			n = len(b)
		}
		if n > 0 && string(b[:n]) == w[:n] {
			return true
		}
	}
	return false
}

func containsNewline(b []byte) bool {
	return strings.IndexByte(string(b), '\n') >= 0
}

// runCommand runs one command line.  handled says it was a command; keep
// says the stream then goes on as an echo stream.
//
//	OPEN <n> <type> <pri>  open n streams to the client with OpenStream(pri,
//	                       type, false); write "hello from go\n" on each and
//	                       echo; reply "OK\n" here, then echo
//	GOAWAY <code> [debug]  Session.GoAway(code, debug): Go's own (broken)
//	                       GOAWAY frame, session left open; then echo
//	CLOSE                  Session.Close(): GOAWAY(NoError) + transport close
//	KILL                   Session.Kill(): transport close, no GOAWAY
//	RST                    reply "OK\n", then Stream.Close(): the stream is
//	                       forgotten, so the client's next DATA gets RST
//	                       StreamClosed (4), the way Go v1 resets streams
func runCommand(sess proto.ISession, str proto.IStream, line string) (handled, keep bool) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return false, false
	}
	switch fields[0] {
	case "OPEN":
		if len(fields) != 4 {
			return false, false
		}
		n, err1 := strconv.Atoi(fields[1])
		typ, err2 := strconv.ParseUint(fields[2], 10, 32)
		pri, err3 := strconv.ParseUint(fields[3], 10, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			return false, false
		}
		for i := 0; i < n; i++ {
			s2, err := sess.OpenStream(frame.StreamPriority(pri), frame.StreamType(typ), false)
			if err != nil {
				str.Write([]byte("ERR " + err.Error() + "\n"))
				return true, true
			}
			go func() {
				if _, err := s2.Write([]byte("hello from go\n")); err != nil {
					s2.Close()
					return
				}
				echo(s2, nil)
			}()
		}
		str.Write([]byte("OK\n"))
		return true, true
	case "GOAWAY":
		code := uint64(0)
		if len(fields) > 1 {
			c, err := strconv.ParseUint(fields[1], 10, 32)
			if err != nil {
				return false, false
			}
			code = c
		}
		debug := ""
		if len(fields) > 2 {
			debug = strings.Join(fields[2:], " ")
		}
		sess.GoAway(frame.ErrorCode(code), []byte(debug))
		return true, true
	case "CLOSE":
		if len(fields) != 1 {
			return false, false
		}
		sess.Close()
		return true, false
	case "KILL":
		if len(fields) != 1 {
			return false, false
		}
		sess.Kill()
		return true, false
	case "RST":
		if len(fields) != 1 {
			return false, false
		}
		str.Write([]byte("OK\n"))
		str.Close()
		return true, false
	}
	return false, false
}

// echo writes back first and then everything read, until EOF; then closes
// (FIN).  After the peer's FIN it finishes echoing before closing.
func echo(str proto.IStream, first []byte) {
	defer str.Close()
	if len(first) > 0 {
		if _, err := str.Write(first); err != nil {
			return
		}
	}
	buf := make([]byte, 32*1024)
	for {
		n, err := str.Read(buf)
		if n > 0 {
			if _, werr := str.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
