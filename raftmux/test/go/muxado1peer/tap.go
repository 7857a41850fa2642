package main

// A net.Conn wrapper that follows the muxado v1 frames going each way, so the
// peer can report what the library does not expose: the priority a SYN
// carried, and heartbeat traffic.  It only reads the bytes; the session sees
// exactly what went over the wire.

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"
)

const (
	typeSyn    = 1
	typeRst    = 2
	typeData   = 3
	typeWndInc = 4
	typeGoAway = 6

	flagFin      = 0x1
	flagPriority = 0x2
	flagType     = 0x4

	heartbeatType = 0xFFFFFFFF - 0x100
)

var typeNames = map[byte]string{1: "SYN", 2: "RST", 3: "DATA", 4: "WNDINC", 5: "PRI", 6: "GOAWAY"}

type synInfo struct {
	Priority   uint32
	StreamType uint32
	Flags      byte
}

// direction parses one direction's byte stream.  After a GOAWAY it stops:
// Go v1's own GOAWAY declares debug bytes it never writes.
type direction struct {
	name      string
	hdr       [8]byte
	hdrN      int
	body      []byte // SYN/RST/WNDINC/GOAWAY fixed body being collected
	need      int
	remaining int // DATA payload bytes still to pass
	length    int
	flags     byte
	ftype     byte
	stream    uint32
	over      bool
}

type tap struct {
	net.Conn
	mu    sync.Mutex
	in    direction
	out   direction
	trace bool

	remoteSyns map[uint32]synInfo // SYNs the peer sent
	localSyns  map[uint32]synInfo // SYNs we sent

	// heartbeat payload bytes (4 per beat)
	pingsSent, echoesReceived, pingsReceived, echoesSent int
	goAwayIn, goAwayOut                                  bool
	rstIn                                                map[uint32]uint32
}

func newTap(conn net.Conn, trace bool) *tap {
	return &tap{
		Conn:       conn,
		in:         direction{name: "in"},
		out:        direction{name: "out"},
		trace:      trace,
		remoteSyns: make(map[uint32]synInfo),
		localSyns:  make(map[uint32]synInfo),
		rstIn:      make(map[uint32]uint32),
	}
}

func (t *tap) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.mu.Lock()
		t.feed(&t.in, p[:n])
		t.mu.Unlock()
	}
	return n, err
}

func (t *tap) Write(p []byte) (int, error) {
	n, err := t.Conn.Write(p)
	if n > 0 {
		t.mu.Lock()
		t.feed(&t.out, p[:n])
		t.mu.Unlock()
	}
	return n, err
}

func (t *tap) remoteSyn(id uint32) (synInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	info, ok := t.remoteSyns[id]
	return info, ok
}

func (t *tap) stats() map[string]interface{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return map[string]interface{}{
		"heartbeatPingsSent":      t.pingsSent / 4,
		"heartbeatEchoesReceived": t.echoesReceived / 4,
		"heartbeatPingsReceived":  t.pingsReceived / 4,
		"heartbeatEchoesSent":     t.echoesSent / 4,
		"goAwayReceived":          t.goAwayIn,
		"goAwaySent":              t.goAwayOut,
		"rstReceived":             t.rstCodes(),
	}
}

// rstCodes counts the RST frames received, by error code (t.mu held).
func (t *tap) rstCodes() map[string]int {
	counts := map[string]int{}
	for _, code := range t.rstIn {
		counts[fmt.Sprint(code)]++
	}
	return counts
}

func (t *tap) rstReceived(id uint32) (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	code, ok := t.rstIn[id]
	return code, ok
}

func (t *tap) feed(d *direction, p []byte) {
	for len(p) > 0 && !d.over {
		if d.remaining > 0 {
			take := d.remaining
			if take > len(p) {
				take = len(p)
			}
			t.onData(d, take)
			d.remaining -= take
			p = p[take:]
			continue
		}
		if d.need > 0 {
			take := d.need - len(d.body)
			if take > len(p) {
				take = len(p)
			}
			d.body = append(d.body, p[:take]...)
			p = p[take:]
			if len(d.body) == d.need {
				t.onBody(d)
				d.need = 0
				d.body = d.body[:0]
			}
			continue
		}
		take := 8 - d.hdrN
		if take > len(p) {
			take = len(p)
		}
		copy(d.hdr[d.hdrN:], p[:take])
		d.hdrN += take
		p = p[take:]
		if d.hdrN == 8 {
			d.hdrN = 0
			t.onHeader(d)
		}
	}
}

func (t *tap) onHeader(d *direction) {
	d.length = int(binary.BigEndian.Uint16(d.hdr[0:2]) & 0x3FFF)
	d.flags = d.hdr[2]
	d.ftype = d.hdr[3] & 0x1F
	d.stream = binary.BigEndian.Uint32(d.hdr[4:8]) & 0x7FFFFFFF
	if t.trace {
		fmt.Fprintf(os.Stderr, "{\"frame\":%q,\"dir\":%q,\"stream\":%d,\"flags\":%d,\"length\":%d}\n",
			typeNames[d.ftype], d.name, d.stream, d.flags, d.length)
	}
	switch d.ftype {
	case typeData:
		d.remaining = d.length
	case typeGoAway:
		if d == &t.in {
			t.goAwayIn = true
		} else {
			t.goAwayOut = true
		}
		d.over = true
	case typeSyn:
		if d.length == 0 {
			t.onBody(d)
		} else if d.length <= 8 {
			d.need = d.length
		} else {
			d.over = true
		}
	case typeRst, typeWndInc:
		d.need = d.length
	default:
		d.over = true
	}
}

func (t *tap) onBody(d *direction) {
	switch d.ftype {
	case typeSyn:
		var info synInfo
		info.Flags = d.flags
		rest := d.body
		if d.flags&flagPriority != 0 && len(rest) >= 4 {
			info.Priority = binary.BigEndian.Uint32(rest)
			rest = rest[4:]
		}
		if d.flags&flagType != 0 && len(rest) >= 4 {
			info.StreamType = binary.BigEndian.Uint32(rest)
		}
		if d == &t.in {
			t.remoteSyns[d.stream] = info
		} else {
			t.localSyns[d.stream] = info
		}
	case typeRst:
		if d == &t.in && len(d.body) == 4 {
			t.rstIn[d.stream] = binary.BigEndian.Uint32(d.body)
		}
	}
}

func (t *tap) onData(d *direction, n int) {
	if d == &t.out {
		if info, ok := t.localSyns[d.stream]; ok && info.StreamType == heartbeatType {
			t.pingsSent += n
		} else if info, ok := t.remoteSyns[d.stream]; ok && info.StreamType == heartbeatType {
			t.echoesSent += n
		}
	} else {
		if info, ok := t.localSyns[d.stream]; ok && info.StreamType == heartbeatType {
			t.echoesReceived += n
		} else if info, ok := t.remoteSyns[d.stream]; ok && info.StreamType == heartbeatType {
			t.pingsReceived += n
		}
	}
}
