// memberlistpeer: a Go memberlist node for raftmux's interop tests, built
// from Debian's golang-github-hashicorp-memberlist-dev in GOPATH mode:
//
//	GOPATH=<tmp>:/usr/share/gocode GO111MODULE=off go build
//
// It prints one JSON object per line on stdout (ready, join, leave, update,
// msg, members, left, error) and reads commands on stdin, one per line:
//
//	members               print {"event":"members","members":[...]}
//	broadcast <text>      queue a user broadcast (piggybacked on gossip)
//	send <node> <text>    a best-effort user message to one member
//	leave                 memberlist.Leave, then print {"event":"left"}
//	quit                  shut down and exit
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

var out = struct {
	sync.Mutex
	enc *json.Encoder
}{enc: json.NewEncoder(os.Stdout)}

func emit(v map[string]interface{}) {
	out.Lock()
	defer out.Unlock()
	out.enc.Encode(v)
}

func nodeInfo(n *memberlist.Node) map[string]interface{} {
	return map[string]interface{}{
		"name": n.Name, "addr": n.Addr.String(), "port": n.Port, "meta": string(n.Meta),
		"pmin": n.PMin, "pmax": n.PMax, "pcur": n.PCur,
	}
}

type events struct{}

func (events) NotifyJoin(n *memberlist.Node) {
	emit(map[string]interface{}{"event": "join", "node": nodeInfo(n)})
}
func (events) NotifyLeave(n *memberlist.Node) {
	emit(map[string]interface{}{"event": "leave", "node": nodeInfo(n)})
}
func (events) NotifyUpdate(n *memberlist.Node) {
	emit(map[string]interface{}{"event": "update", "node": nodeInfo(n)})
}

type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}

type delegate struct {
	meta  []byte
	queue *memberlist.TransmitLimitedQueue
}

func (d *delegate) NodeMeta(limit int) []byte { return d.meta }
func (d *delegate) NotifyMsg(b []byte) {
	emit(map[string]interface{}{"event": "msg", "data": string(b)})
}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}
func (d *delegate) LocalState(join bool) []byte            { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

func main() {
	name := flag.String("name", "go", "node name")
	bind := flag.String("bind", "127.0.0.1", "bind address")
	port := flag.Int("port", 0, "bind port (0: any)")
	join := flag.String("join", "", "comma-separated addresses to join")
	meta := flag.String("meta", "", "node metadata")
	probeInterval := flag.Duration("probe-interval", time.Second, "ProbeInterval")
	probeTimeout := flag.Duration("probe-timeout", 200*time.Millisecond, "ProbeTimeout")
	gossipInterval := flag.Duration("gossip-interval", 100*time.Millisecond, "GossipInterval")
	pushPull := flag.Duration("pushpull-interval", 15*time.Second, "PushPullInterval")
	tcpTimeout := flag.Duration("tcp-timeout", time.Second, "TCPTimeout")
	suspicionMult := flag.Int("suspicion-mult", 3, "SuspicionMult")
	retransmitMult := flag.Int("retransmit-mult", 2, "RetransmitMult")
	compression := flag.Bool("compression", true, "EnableCompression")
	verbose := flag.Bool("v", false, "memberlist logs on stderr")
	flag.Parse()

	conf := memberlist.DefaultLocalConfig()
	conf.Name = *name
	conf.BindAddr = *bind
	conf.BindPort = *port
	conf.AdvertisePort = *port
	conf.ProbeInterval = *probeInterval
	conf.ProbeTimeout = *probeTimeout
	conf.GossipInterval = *gossipInterval
	conf.PushPullInterval = *pushPull
	conf.TCPTimeout = *tcpTimeout
	conf.SuspicionMult = *suspicionMult
	conf.RetransmitMult = *retransmitMult
	conf.EnableCompression = *compression
	if !*verbose {
		conf.LogOutput = ioutil.Discard
	}
	d := &delegate{meta: []byte(*meta)}
	conf.Delegate = d
	conf.Events = events{}

	m, err := memberlist.Create(conf)
	if err != nil {
		emit(map[string]interface{}{"event": "error", "error": err.Error()})
		os.Exit(1)
	}
	d.queue = &memberlist.TransmitLimitedQueue{NumNodes: m.NumMembers, RetransmitMult: 4}
	local := m.LocalNode()
	emit(map[string]interface{}{"event": "ready", "node": nodeInfo(local)})

	if *join != "" {
		n, err := m.Join(strings.Split(*join, ","))
		ev := map[string]interface{}{"event": "joined", "count": n}
		if err != nil {
			ev["error"] = err.Error()
		}
		emit(ev)
	}

	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		cmd, rest := line, ""
		if i := strings.IndexByte(line, ' '); i >= 0 {
			cmd, rest = line[:i], line[i+1:]
		}
		switch cmd {
		case "members":
			var list []map[string]interface{}
			for _, n := range m.Members() {
				list = append(list, nodeInfo(n))
			}
			emit(map[string]interface{}{"event": "members", "members": list})
		case "broadcast":
			d.queue.QueueBroadcast(broadcast([]byte(rest)))
			emit(map[string]interface{}{"event": "queued"})
		case "send":
			parts := strings.SplitN(rest, " ", 2)
			sent := false
			for _, n := range m.Members() {
				if n.Name == parts[0] && len(parts) == 2 {
					if err := m.SendBestEffort(n, []byte(parts[1])); err == nil {
						sent = true
					}
				}
			}
			emit(map[string]interface{}{"event": "sent", "ok": sent})
		case "leave":
			err := m.Leave(5 * time.Second)
			ev := map[string]interface{}{"event": "left"}
			if err != nil {
				ev["error"] = err.Error()
			}
			emit(ev)
		case "quit":
			m.Shutdown()
			return
		case "":
		default:
			log.Printf("unknown command %q", line)
			emit(map[string]interface{}{"event": "error", "error": fmt.Sprintf("unknown %q", cmd)})
		}
	}
	m.Shutdown()
}
