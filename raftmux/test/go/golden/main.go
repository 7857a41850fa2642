// Prints memberlist's wire encodings (go-msgpack with memberlist's handle,
// compress/lzw, hash/crc32) as hex for raftmux/test/test_memberlist_codec.py.
// The structs mirror memberlist's private message types field for field.
// Build: GOPATH=<tmp>:/usr/share/gocode GO111MODULE=off go build
package main

import (
	"bytes"
	"compress/lzw"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"net"

	"github.com/hashicorp/go-msgpack/codec"
)

type ping struct {
	SeqNo      uint32
	Node       string
	SourceAddr []byte `codec:",omitempty"`
	SourcePort uint16 `codec:",omitempty"`
	SourceNode string `codec:",omitempty"`
}
type indirectPingReq struct {
	SeqNo      uint32
	Target     []byte
	Port       uint16
	Node       string
	Nack       bool
	SourceAddr []byte `codec:",omitempty"`
	SourcePort uint16 `codec:",omitempty"`
	SourceNode string `codec:",omitempty"`
}
type ackResp struct {
	SeqNo   uint32
	Payload []byte
}
type nackResp struct{ SeqNo uint32 }
type errResp struct{ Error string }
type suspect struct {
	Incarnation uint32
	Node        string
	From        string
}
type alive struct {
	Incarnation uint32
	Node        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Vsn         []uint8
}
type dead struct {
	Incarnation uint32
	Node        string
	From        string
}
type pushPullHeader struct {
	Nodes        int
	UserStateLen int
	Join         bool
}
type userMsgHeader struct{ UserMsgLen int }
type pushNodeState struct {
	Name        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Incarnation uint32
	State       int
	Vsn         []uint8
}
type compress struct {
	Algo uint8
	Buf  []byte
}

func enc(t byte, v interface{}) []byte {
	buf := bytes.NewBuffer(nil)
	buf.WriteByte(t)
	hd := codec.MsgpackHandle{}
	if err := codec.NewEncoder(buf, &hd).Encode(v); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func show(name string, b []byte) { fmt.Printf("%s %s\n", name, hex.EncodeToString(b)) }

func compound(msgs [][]byte) []byte {
	buf := bytes.NewBuffer(nil)
	buf.WriteByte(7)
	buf.WriteByte(uint8(len(msgs)))
	for _, m := range msgs {
		binary.Write(buf, binary.BigEndian, uint16(len(m)))
	}
	for _, m := range msgs {
		buf.Write(m)
	}
	return buf.Bytes()
}

func main() {
	long := "a-node-name-that-is-longer-than-thirty-one-bytes"
	show("ping", enc(0, &ping{SeqNo: 7, Node: "b"}))
	show("ping_src", enc(0, &ping{SeqNo: 4294967295, Node: long, SourceAddr: net.ParseIP("127.0.0.1").To4(), SourcePort: 7946, SourceNode: "a"}))
	show("indirect", enc(1, &indirectPingReq{SeqNo: 300, Target: net.ParseIP("::1"), Port: 65535, Node: "c", Nack: true, SourceAddr: net.ParseIP("10.0.0.1").To4(), SourcePort: 128, SourceNode: "a"}))
	show("ack_nil", enc(2, &ackResp{SeqNo: 1}))
	show("ack_payload", enc(2, &ackResp{SeqNo: 70000, Payload: []byte("hi")}))
	show("nack", enc(11, &nackResp{SeqNo: 255}))
	show("err", enc(13, &errResp{Error: "boom"}))
	show("suspect", enc(3, &suspect{Incarnation: 3, Node: "n1", From: "n2"}))
	show("alive", enc(4, &alive{Incarnation: 1, Node: "n1", Addr: net.ParseIP("127.0.0.1").To4(), Port: 7946, Meta: nil, Vsn: []uint8{1, 5, 2, 0, 0, 0}}))
	show("alive_meta", enc(4, &alive{Incarnation: 65536, Node: long, Addr: net.ParseIP("fe80::1"), Port: 1, Meta: bytes.Repeat([]byte{0xff}, 40), Vsn: []uint8{1, 5, 2, 0, 0, 0}}))
	show("dead", enc(5, &dead{Incarnation: 9, Node: "n1", From: "n1"}))
	show("pushpull_header", enc(6, &pushPullHeader{Nodes: 2, UserStateLen: 300, Join: true}))
	show("pushnode", enc(6, &pushNodeState{Name: "n1", Addr: net.ParseIP("127.0.0.1").To4(), Port: 7946, Meta: []byte("m"), Incarnation: 2, State: 3, Vsn: []uint8{1, 5, 2, 0, 0, 0}})[1:])
	show("usermsg_header", enc(8, &userMsgHeader{UserMsgLen: 5}))
	pingb := enc(0, &ping{SeqNo: 7, Node: "b"})
	susb := enc(3, &suspect{Incarnation: 3, Node: "n1", From: "n2"})
	comp := compound([][]byte{pingb, susb})
	show("compound", comp)
	crc := crc32.ChecksumIEEE(comp)
	h := make([]byte, 5)
	h[0] = 12
	binary.BigEndian.PutUint32(h[1:], crc)
	show("crc_compound", append(h, comp...))
	var lb bytes.Buffer
	w := lzw.NewWriter(&lb, lzw.LSB, 8)
	w.Write(comp)
	w.Close()
	show("compress_compound", enc(9, &compress{Algo: 0, Buf: lb.Bytes()}))
}
