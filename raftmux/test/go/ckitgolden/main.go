// Prints the values raftmux/test/test_ckit_golden.py pins: xxHash64 as
// Debian's cespare/xxhash computes it over the inputs ckit's hashes feed it,
// the hashes' owners for some keys (ring, rendezvous and multi-probe
// written out here from reading grafana/ckit's internal/chash, so Go's own
// uint64 arithmetic, sort.Search and strconv settle every detail), and
// ckit's gossip messages as go-msgpack encodes them (the structs mirror
// ckit's messages.State and localState field for field).
// Build: GOPATH=<tmp>:/usr/share/gocode GO111MODULE=off go build
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cespare/xxhash"
	"github.com/hashicorp/go-msgpack/codec"
)

type state struct {
	NodeName string
	NewState uint
	Time     uint64
}

type localState struct {
	CurrentTime uint64
	NodeStates  []state
}

type token struct {
	node  string
	token uint64
}

func sortTokens(t []token) {
	sort.Slice(t, func(i, j int) bool {
		if t[i].token == t[j].token {
			return t[i].node < t[j].node
		}
		return t[i].token < t[j].token
	})
}

func ringTokens(node string, n int) []uint64 {
	dig := xxhash.New()
	dig.Write([]byte(node))
	data := []byte{0}
	out := make([]uint64, 0, n)
	for t := 0; t < n; t++ {
		data[0] = byte(t)
		dig.Write(data)
		out = append(out, dig.Sum64())
	}
	return out
}

func ring(nodes []string, numTokens int, key uint64, n int) []string {
	var toks []token
	for _, node := range nodes {
		for _, t := range ringTokens(node, numTokens) {
			toks = append(toks, token{node, t})
		}
	}
	sortTokens(toks)
	idx := sort.Search(len(toks), func(i int) bool { return toks[i].token >= key })
	if idx == len(toks) {
		idx = 0
	}
	res := []string{}
	seen := map[string]bool{}
	for len(res) < n {
		if !seen[toks[idx].node] {
			seen[toks[idx].node] = true
			res = append(res, toks[idx].node)
		}
		idx = (idx + 1) % len(toks)
	}
	return res
}

func xorshiftMult64(x uint64) uint64 {
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	return x * 2685821657736338717
}

func rendezvous(nodes []string, key uint64, n int) []string {
	var toks []token
	for _, node := range nodes {
		toks = append(toks, token{node, xorshiftMult64(key ^ xxhash.Sum64String(node))})
	}
	sortTokens(toks)
	res := []string{}
	for i := 0; i < n; i++ {
		res = append(res, toks[i].node)
	}
	return res
}

func secondKey(k uint64) uint64 {
	dig := xxhash.New()
	dig.Write(strconv.AppendUint(nil, k, 16))
	return dig.Sum64()
}

func wrap(i, n int) int {
	if i < 0 {
		return n - 1
	}
	return i % n
}

func dist(a, b uint64) uint64 {
	if a < b {
		return b - a
	}
	return a - b
}

func multiprobe(nodes []string, key uint64, n int) []string {
	var toks []token
	for _, node := range nodes {
		toks = append(toks, token{node, xxhash.Sum64String(node)})
	}
	sortTokens(toks)
	h1 := secondKey(key)
	h2 := secondKey(h1)
	closest, closestDist := 0, ^uint64(0)
	for k := 0; k < 21; k++ {
		h := h1 + uint64(k)*h2
		found := sort.Search(len(toks), func(i int) bool { return toks[i].token >= h })
		a, b := wrap(found-1, len(toks)), wrap(found, len(toks))
		idx := b
		if dist(toks[a].token, h) <= dist(toks[b].token, h) {
			idx = a
		}
		if d := dist(toks[idx].token, h); d < closestDist {
			closest, closestDist = idx, d
		}
	}
	res := []string{}
	for i := 0; i < n; i++ {
		res = append(res, toks[wrap(closest+i, len(toks))].node)
	}
	return res
}

func msgpack(v interface{}) []byte {
	var buf bytes.Buffer
	var h codec.MsgpackHandle
	if err := codec.NewEncoder(&buf, &h).Encode(v); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func message(s state) []byte {
	var buf bytes.Buffer
	binary.Write(&buf, binary.BigEndian, uint16(0x1201))
	buf.WriteByte(1)
	buf.Write(msgpack(&s))
	return buf.Bytes()
}

func u64s(v []uint64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatUint(x, 10)
	}
	return strings.Join(parts, ",")
}

func main() {
	out := func(name, value string) { fmt.Println(name, value) }
	for _, s := range []string{"", "a", "abc", "some-key", "example-key", "node-a"} {
		out("xxh64:"+s, strconv.FormatUint(xxhash.Sum64String(s), 10))
	}
	out("ring-tokens:node-a", u64s(ringTokens("node-a", 3)))
	all := ringTokens("node-b", 300)
	out("ring-tokens:node-b:255-257,299", u64s([]uint64{all[255], all[256], all[257], all[299]}))
	for _, k := range []uint64{0, 1, 255, 0xffffffffffffffff, xxhash.Sum64String("some-key")} {
		out("secondKey:"+strconv.FormatUint(k, 10), strconv.FormatUint(secondKey(k), 10))
		out("xorshift:"+strconv.FormatUint(k, 10), strconv.FormatUint(xorshiftMult64(k), 10))
	}
	nodes := []string{"node-a", "node-b", "node-c", "node-d", "node-e"}
	for _, key := range []string{"some-key", "example-key", "k1", "k2", "k3", ""} {
		k := xxhash.Sum64String(key)
		out("ring256:"+key, strings.Join(ring(nodes, 256, k, 3), ","))
		out("ring512:"+key, strings.Join(ring(nodes, 512, k, 3), ","))
		out("rendezvous:"+key, strings.Join(rendezvous(nodes, k, 3), ","))
		out("multiprobe:"+key, strings.Join(multiprobe(nodes, k, 3), ","))
	}
	out("state", hex.EncodeToString(message(state{"node-a", 1, 5})))
	out("state-zero", hex.EncodeToString(message(state{"", 0, 0})))
	out("state-big", hex.EncodeToString(message(state{
		"a-node-name-that-is-longer-than-thirty-one-bytes", 2, 1 << 40})))
	out("state-times", hex.EncodeToString(message(state{"n", 2, 200}))+","+
		hex.EncodeToString(message(state{"n", 2, 70000}))+","+
		hex.EncodeToString(message(state{"n", 2, 0xffffffffffffffff})))
	out("localstate", hex.EncodeToString(msgpack(&localState{
		CurrentTime: 42,
		NodeStates:  []state{{"node-a", 1, 40}, {"node-b", 0, 0}},
	})))
	out("localstate-empty", hex.EncodeToString(msgpack(&localState{NodeStates: []state{}})))
}
