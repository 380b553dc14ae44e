package xenstore

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/gopvgrub/gopvgrub/xen"
)

func wireMsg(typ MsgType, req, tx uint32, payload string) []byte {
	return append(AppendHeader(nil, Header{Type: typ, ReqID: req, TxID: tx, Len: uint32(len(payload))}), payload...)
}

func TestDecoderPieces(t *testing.T) {
	stream := append(wireMsg(TypeRead, 7, 0, "value"), wireMsg(TypeWatchEvent, 0, 0, "p\x00tok\x00")...)
	stream = append(stream, wireMsg(TypeWrite, 8, 3, "")...)
	want := []Message{
		{Header{TypeRead, 7, 0, 5}, []byte("value")},
		{Header{TypeWatchEvent, 0, 0, 6}, []byte("p\x00tok\x00")},
		{Header{TypeWrite, 8, 3, 0}, []byte{}},
	}
	for _, chunk := range []int{1, 2, 3, 7, 16, 17, 1000} {
		var d Decoder
		var got []Message
		for p := stream; len(p) > 0; {
			n := min(chunk, len(p))
			piece := p[:n]
			for len(piece) > 0 {
				used, m, err := d.Feed(piece)
				if err != nil {
					t.Fatal(err)
				}
				if used == 0 {
					t.Fatalf("chunk %d: no progress", chunk)
				}
				piece = piece[used:]
				if m != nil {
					got = append(got, *m)
				}
			}
			p = p[n:]
		}
		if d.Partial() {
			t.Errorf("chunk %d: partial message left", chunk)
		}
		if len(got) != len(want) {
			t.Fatalf("chunk %d: %d messages", chunk, len(got))
		}
		for i := range want {
			if got[i].Header != want[i].Header || !bytes.Equal(got[i].Payload, want[i].Payload) {
				t.Errorf("chunk %d msg %d: %+v", chunk, i, got[i])
			}
		}
	}
}

func TestDecoderRejectsOversize(t *testing.T) {
	for _, n := range []uint32{4097, 1 << 31, 0xffffffff} {
		var d Decoder
		_, _, err := d.Feed(AppendHeader(nil, Header{Type: TypeRead, Len: n}))
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("len %d: %v", n, err)
		}
	}
	var d Decoder
	if _, m, err := d.Feed(wireMsg(TypeRead, 1, 0, string(make([]byte, 4096)))); err != nil || m == nil {
		t.Errorf("4096-byte payload: %v", err)
	}
	if _, err := ParseHeader(make([]byte, 15)); !errors.Is(err, ErrProtocol) {
		t.Errorf("short header: %v", err)
	}
}

func TestParsers(t *testing.T) {
	t.Run("error", func(t *testing.T) {
		for _, tc := range []struct {
			in   string
			want Errno
			ok   bool
		}{
			{"ENOENT\x00", ErrNotExist, true},
			{"E2BIG\x00", ErrTooBig, true},
			{"EQUOTA\x00", ErrQuota, true},
			{"ENOENT", "", false},
			{"\x00", "", false},
			{"enoent\x00", "", false},
			{"E\x00", "", false},
			{"ENO ENT\x00", "", false},
			{"EAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\x00", "", false}, // 33 bytes
			{"ENOENT\x00\x00", "", false},
		} {
			got, err := ParseErrorReply([]byte(tc.in))
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("%q: %q, %v", tc.in, got, err)
			}
		}
	})
	t.Run("watch event", func(t *testing.T) {
		for _, tc := range []struct {
			in          string
			path, token string
			ok          bool
		}{
			{"a/b\x00tok\x00", "a/b", "tok", true},
			{"a\x00\x00", "a", "", true},
			{"a\x00tok", "", "", false},
			{"a\x00", "", "", false},
			{"\x00tok\x00", "", "", false},
			{"a\x00b\x00c\x00", "", "", false},
			{"", "", "", false},
		} {
			p, tok, err := ParseWatchEvent([]byte(tc.in))
			if (err == nil) != tc.ok || p != tc.path || tok != tc.token {
				t.Errorf("%q: %q %q %v", tc.in, p, tok, err)
			}
		}
	})
	t.Run("transaction id", func(t *testing.T) {
		for _, tc := range []struct {
			in   string
			want uint32
			ok   bool
		}{
			{"12\x00", 12, true},
			{"4294967295\x00", 0xffffffff, true},
			{"4294967296\x00", 0, false},
			{"0\x00", 0, false},
			{"-1\x00", 0, false},
			{"12", 0, false},
			{"\x00", 0, false},
			{"1 \x00", 0, false},
		} {
			got, err := ParseTransactionID([]byte(tc.in))
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("%q: %d, %v", tc.in, got, err)
			}
		}
	})
	t.Run("directory", func(t *testing.T) {
		for _, tc := range []struct {
			in   string
			want []string
			ok   bool
		}{
			{"", nil, true},
			{"a\x00bb\x00", []string{"a", "bb"}, true},
			{"a\x00\x00", nil, false},
			{"a/b\x00", nil, false},
			{"a", nil, false},
		} {
			got, err := ParseDirectory([]byte(tc.in))
			if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
				t.Errorf("%q: %q, %v", tc.in, got, err)
			}
		}
	})
	t.Run("perms", func(t *testing.T) {
		for _, tc := range []struct {
			in   string
			want []Perm
			ok   bool
		}{
			{"n0\x00", []Perm{{0, AccessNone}}, true},
			{"b5\x00r0\x00w65535\x00", []Perm{{5, AccessBoth}, {0, AccessRead}, {65535, AccessWrite}}, true},
			{"", nil, false},
			{"x1\x00", nil, false},
			{"r\x00", nil, false},
			{"r65536\x00", nil, false},
			{"r+1\x00", nil, false},
			{"r1", nil, false},
		} {
			got, err := ParsePerms([]byte(tc.in))
			if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
				t.Errorf("%q: %v, %v", tc.in, got, err)
			}
		}
		if s := (Perm{Dom: 7, Access: AccessRead}).String(); s != "r7" {
			t.Errorf("String = %q", s)
		}
	})
}

func TestMsgTypeValues(t *testing.T) {
	// enum xsd_sockmsg_type in io/xs_wire.h, counted from XS_CONTROL = 0,
	// with XS_RESET_WATCHES = XS_SET_TARGET + 2.
	for _, tc := range []struct {
		t    MsgType
		want uint32
		name string
	}{
		{TypeControl, 0, "CONTROL"}, {TypeDirectory, 1, "DIRECTORY"}, {TypeRead, 2, "READ"},
		{TypeGetPerms, 3, "GET_PERMS"}, {TypeWatch, 4, "WATCH"}, {TypeUnwatch, 5, "UNWATCH"},
		{TypeTransactionStart, 6, "TRANSACTION_START"}, {TypeTransactionEnd, 7, "TRANSACTION_END"},
		{TypeIntroduce, 8, "INTRODUCE"}, {TypeRelease, 9, "RELEASE"}, {TypeGetDomainPath, 10, "GET_DOMAIN_PATH"},
		{TypeWrite, 11, "WRITE"}, {TypeMkdir, 12, "MKDIR"}, {TypeRm, 13, "RM"}, {TypeSetPerms, 14, "SET_PERMS"},
		{TypeWatchEvent, 15, "WATCH_EVENT"}, {TypeError, 16, "ERROR"}, {TypeIsDomainIntroduce, 17, "IS_DOMAIN_INTRODUCED"},
		{TypeResume, 18, "RESUME"}, {TypeSetTarget, 19, "SET_TARGET"}, {TypeResetWatches, 21, "RESET_WATCHES"},
		{TypeDirectoryPart, 22, "DIRECTORY_PART"}, {TypeInvalid, 0xffff, "MsgType(65535)"}, {20, 20, "MsgType(20)"},
	} {
		if uint32(tc.t) != tc.want || tc.t.String() != tc.name {
			t.Errorf("%s: value %d, String %q", tc.name, uint32(tc.t), tc.t.String())
		}
	}
	if HeaderSize != 16 || PayloadMax != 4096 || AbsPathMax != 3072 || RelPathMax != 2048 {
		t.Error("wire limits differ from xs_wire.h")
	}
}

func TestErrnoMatching(t *testing.T) {
	if !errors.Is(ErrNotExist, xen.ENOENT) || errors.Is(ErrNotExist, xen.EEXIST) {
		t.Error("ENOENT vs xen.Errno")
	}
	if !errors.Is(ErrAgain, xen.EAGAIN) || errors.Is(ErrQuota, xen.Errno(0)) {
		t.Error("EAGAIN / EQUOTA vs xen.Errno")
	}
	if ErrNotExist.Error() != "xenstore: ENOENT (no such node)" || Errno("EODD").Error() != "xenstore: EODD" {
		t.Errorf("messages %q %q", ErrNotExist.Error(), Errno("EODD").Error())
	}
}

// FuzzDecoder feeds arbitrary bytes, split at an arbitrary point, through
// the decoder and every payload parser: no panic, every message within
// the payload limit, progress on every call.
func FuzzDecoder(f *testing.F) {
	f.Add(wireMsg(TypeRead, 1, 0, "v"), uint16(3))
	f.Add(append(wireMsg(TypeWatchEvent, 0, 0, "a\x00t\x00"), wireMsg(TypeError, 2, 0, "ENOENT\x00")...), uint16(17))
	f.Add(wireMsg(TypeDirectory, 1, 0, "a\x00b\x00"), uint16(0))
	f.Add(wireMsg(TypeGetPerms, 1, 0, "n0\x00r1\x00"), uint16(5))
	f.Add(wireMsg(TypeTransactionStart, 1, 0, "42\x00"), uint16(20))
	f.Add(AppendHeader(nil, Header{Type: TypeRead, Len: 0xffffffff}), uint16(8))
	f.Add([]byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		var d Decoder
		feed := func(p []byte) bool {
			for len(p) > 0 {
				n, m, err := d.Feed(p)
				if err != nil {
					if !errors.Is(err, ErrProtocol) {
						t.Fatalf("error %v is not ErrProtocol", err)
					}
					return false
				}
				if n == 0 {
					t.Fatal("Feed made no progress")
				}
				p = p[n:]
				if m != nil {
					if len(m.Payload) > PayloadMax || uint32(len(m.Payload)) != m.Len {
						t.Fatalf("payload %d bytes, header says %d", len(m.Payload), m.Len)
					}
					ParseErrorReply(m.Payload)
					ParseWatchEvent(m.Payload)
					ParseTransactionID(m.Payload)
					ParseDirectory(m.Payload)
					if ps, err := ParsePerms(m.Payload); err == nil {
						for _, p := range ps {
							if q, err := ParsePerm(p.String()); err != nil || q != p {
								t.Fatalf("perm %v does not round-trip", p)
							}
						}
					}
				}
			}
			return true
		}
		s := int(split)
		if s > len(data) {
			s = len(data)
		}
		if feed(data[:s]) {
			feed(data[s:])
		}
	})
}
