package tftp

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestPacketRoundTrip(t *testing.T) {
	for _, p := range []Packet{
		{Op: OpRRQ, Filename: "pxe/menu.lst", Mode: "octet"},
		{Op: OpRRQ, Filename: "/boot/vmlinuz", Mode: "octet", Options: []Option{{"blksize", "1468"}, {"tsize", "0"}, {"windowsize", "16"}}},
		{Op: OpWRQ, Filename: "x", Mode: "netascii"},
		{Op: OpOACK, Options: []Option{{"blksize", "1024"}}},
		{Op: OpOACK},
		{Op: OpDATA, Block: 65535, Data: []byte("payload")},
		{Op: OpDATA, Block: 0, Data: []byte{}},
		{Op: OpACK, Block: 7},
		{Op: OpERROR, ErrCode: 1, ErrMsg: "File not found"},
		{Op: OpERROR, ErrCode: 8, ErrMsg: ""},
	} {
		b := p.Append(nil)
		got, err := ParsePacket(b)
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(p) {
			t.Fatalf("round trip %+v -> %+v", p, got)
		}
	}
}

func TestPacketWire(t *testing.T) {
	// Golden bytes, RFC 1350 §5 and RFC 2347 §3.
	b := Packet{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"blksize", "1468"}}}.Append(nil)
	if want := "\x00\x01f\x00octet\x00blksize\x001468\x00"; string(b) != want {
		t.Fatalf("RRQ %q", b)
	}
	if b := (Packet{Op: OpACK, Block: 0x1234}).Append(nil); !bytes.Equal(b, []byte{0, 4, 0x12, 0x34}) {
		t.Fatalf("ACK %x", b)
	}
	if b := (Packet{Op: OpERROR, ErrCode: 5, ErrMsg: "x"}).Append(nil); string(b) != "\x00\x05\x00\x05x\x00" {
		t.Fatalf("ERROR %q", b)
	}
}

func TestParsePacketErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    string
	}{
		{"empty", ""},
		{"one byte", "\x00"},
		{"unknown opcode", "\x00\x07"},
		{"opcode zero", "\x00\x00abc"},
		{"RRQ unterminated", "\x00\x01file\x00octet"},
		{"RRQ without mode", "\x00\x01file\x00"},
		{"RRQ empty filename", "\x00\x01\x00octet\x00"},
		{"RRQ option without value", "\x00\x01f\x00octet\x00blksize\x00"},
		{"OACK unterminated", "\x00\x06blksize\x001024"},
		{"OACK odd", "\x00\x06blksize\x00"},
		{"OACK empty name", "\x00\x06\x001024\x00"},
		{"OACK repeated", "\x00\x06blksize\x00512\x00BLKSIZE\x00512\x00"},
		{"OACK too many", "\x00\x06" + strings.Repeat("a\x001\x00", MaxOptions+1)},
		{"DATA without block", "\x00\x03\x00"},
		{"DATA too long", "\x00\x03\x00\x01" + strings.Repeat("x", MaxBlockSize+1)},
		{"ACK without block", "\x00\x04\x00"},
		{"ERROR without code", "\x00\x05\x00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p, err := ParsePacket([]byte(tc.b)); !errors.Is(err, ErrProtocol) {
				t.Fatalf("ParsePacket = %+v, %v", p, err)
			}
		})
	}
}

func TestParsePacketLiberal(t *testing.T) {
	// An ERROR message without its NUL, and with text after it.
	p, err := ParsePacket([]byte("\x00\x05\x00\x01no such file"))
	if err != nil || p.ErrMsg != "no such file" {
		t.Fatalf("%+v %v", p, err)
	}
	p, err = ParsePacket([]byte("\x00\x05\x00\x01msg\x00junk"))
	if err != nil || p.ErrMsg != "msg" {
		t.Fatalf("%+v %v", p, err)
	}
	// Option names are case-insensitive.
	p, err = ParsePacket([]byte("\x00\x06BlkSize\x001024\x00"))
	if v, ok := p.Option("blksize"); err != nil || !ok || v != "1024" {
		t.Fatalf("%+v %v", p, err)
	}
	if _, ok := p.Option("tsize"); ok {
		t.Fatal("tsize present")
	}
	// ACK with trailing bytes.
	if p, err := ParsePacket([]byte{0, 4, 0, 9, 0xff}); err != nil || p.Block != 9 {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestParseUint(t *testing.T) {
	for _, tc := range []struct {
		v      string
		lo, hi int64
		ok     bool
	}{
		{"1468", 8, 65464, true},
		{"8", 8, 65464, true},
		{"7", 8, 65464, false},
		{"65465", 8, 65464, false},
		{"", 0, 10, false},
		{"+5", 0, 10, false},
		{"-5", 0, 10, false},
		{"5 ", 0, 10, false},
		{"0x10", 0, 100, false},
		{"99999999999999999999", 0, 1 << 62, false},
		{"4611686018427387904", 0, 1 << 62, true},
	} {
		_, err := parseUint("x", tc.v, tc.lo, tc.hi)
		if (err == nil) != tc.ok {
			t.Errorf("parseUint(%q, %d, %d) = %v", tc.v, tc.lo, tc.hi, err)
		}
	}
}

func TestErrorText(t *testing.T) {
	for code := uint16(0); code <= 9; code++ {
		if ErrorText(code) == "" {
			t.Errorf("code %d", code)
		}
	}
	if got := (&ServerError{Code: 2}).Error(); got != "tftp: server error 2 (access violation)" {
		t.Fatalf("%q", got)
	}
	if got := Sanitize("a\nb\x7f\xffc"+strings.Repeat("d", 300), 8); got != "a?b??cdd" {
		t.Fatalf("Sanitize = %q", got)
	}
}

// FuzzParsePacket: the parser never panics, what it accepts re-encodes to
// a packet that parses the same, and the client's view of a DATA payload
// lies within the input.
func FuzzParsePacket(f *testing.F) {
	for _, p := range []Packet{
		{Op: OpOACK, Options: []Option{{"blksize", "1468"}, {"tsize", "123"}, {"windowsize", "8"}}},
		{Op: OpDATA, Block: 1, Data: []byte("data")},
		{Op: OpERROR, ErrCode: 1, ErrMsg: "File not found"},
		{Op: OpACK, Block: 3},
		{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"tsize", "0"}}},
	} {
		f.Add(p.Append(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err != nil {
			return
		}
		if len(p.Data) > len(b) || len(p.Options) > MaxOptions {
			t.Fatalf("%+v from %d bytes", p, len(b))
		}
		for _, o := range p.Options {
			if strings.ContainsRune(o.Name, 0) || strings.ContainsRune(o.Value, 0) || o.Name == "" {
				t.Fatalf("option %q", o)
			}
		}
		if p.Op == OpERROR && strings.ContainsRune(p.ErrMsg, 0) {
			t.Fatalf("message %q", p.ErrMsg)
		}
		p2, err := ParsePacket(p.Append(nil))
		if err != nil || fmt.Sprint(p2) != fmt.Sprint(p) {
			t.Fatalf("round trip %+v -> %+v %v", p, p2, err)
		}
	})
}
