package tftp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
	"github.com/gopvgrub/gopvgrub/netboot/nettest"
	"github.com/gopvgrub/gopvgrub/netboot/tftp"
)

var (
	serverMAC  = [6]byte{0x00, 0x16, 0x3e, 0, 0, 1}
	clientMAC  = [6]byte{0x00, 0x16, 0x3e, 0, 0, 2}
	serverAddr = netip.MustParsePrefix("10.0.0.1/24")
	clientAddr = netip.MustParsePrefix("10.0.0.10/24")
)

func pattern(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// bed is a segment with a fake TFTP server and a client stack.
type bed struct {
	hub    *nettest.Hub
	srv    *nettest.TFTPServer
	client *nettest.Station
}

func newBed(t *testing.T, srv *nettest.TFTPServer) *bed {
	t.Helper()
	h := nettest.NewHub()
	ss, err := h.NewStation(serverMAC, serverAddr)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := h.NewStation(clientMAC, clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv.Listen = ss.Listen
	srv.Port = tftp.Port
	if _, err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.SetFault(nil)
		srv.Close()
		ss.Close()
		cs.Close()
	})
	return &bed{hub: h, srv: srv, client: cs}
}

func (b *bed) fetch(t *testing.T, o tftp.Options, name string) ([]byte, tftp.Stats, error) {
	t.Helper()
	c := &tftp.Client{
		Listen:  func() (ipv4.PacketConn, error) { return b.client.Stack.ListenUDP(0) },
		Options: o,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var buf bytes.Buffer
	st, err := c.Get(ctx, netip.AddrPortFrom(serverAddr.Addr(), tftp.Port), name, &buf)
	return buf.Bytes(), st, err
}

func TestMatrix(t *testing.T) {
	files := map[string][]byte{}
	for _, n := range []int{0, 1, 511, 512, 513, 1468, 1469, 100000} {
		files[fmt.Sprint(n)] = pattern(n, uint64(n))
	}
	b := newBed(t, &nettest.TFTPServer{Files: files})
	for _, bs := range []int{0, 1468} {
		for _, ws := range []int{1, 8, 16} {
			for name, want := range files {
				got, st, err := b.fetch(t, tftp.Options{BlockSize: bs, WindowSize: ws}, name)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("blksize %d window %d file %s: %v, %d bytes", bs, ws, name, err, len(got))
				}
				if (bs != 0 && st.BlockSize != bs) || st.WindowSize != ws || st.TransferSize != int64(len(want)) {
					t.Fatalf("stats %+v", st)
				}
			}
		}
	}
	if _, _, err := b.fetch(t, tftp.Options{}, "missing"); !errors.As(err, new(*tftp.ServerError)) {
		t.Fatalf("missing file: %v", err)
	}
}

// lossy drops, duplicates and reorders frames in both directions, with a
// fixed seed.
func lossy(seed uint64, drop, dup, reorder float64) nettest.Fault {
	r := rand.New(rand.NewPCG(seed, 2))
	var held []byte
	return func(from *nettest.Port, f []byte) [][]byte {
		var out [][]byte
		switch x := r.Float64(); {
		case x < drop:
		case x < drop+dup:
			out = [][]byte{f, f}
		case x < drop+dup+reorder && held == nil:
			held = f
			return nil
		default:
			out = [][]byte{f}
		}
		if held != nil && len(out) > 0 {
			out = append(out, held)
			held = nil
		}
		return out
	}
}

func TestLossyNetwork(t *testing.T) {
	file := pattern(300000, 7)
	for _, ws := range []int{1, 8, 16} {
		t.Run(fmt.Sprintf("window%d", ws), func(t *testing.T) {
			b := newBed(t, &nettest.TFTPServer{Files: map[string][]byte{"f": file}, Timeout: 20 * time.Millisecond, Retries: 20})
			b.hub.SetFault(lossy(uint64(ws), 0.05, 0.03, 0.03))
			got, st, err := b.fetch(t, tftp.Options{BlockSize: 1468, WindowSize: ws, Timeout: 20 * time.Millisecond, MaxTimeout: 80 * time.Millisecond, Retries: 20}, "f")
			if err != nil || !bytes.Equal(got, file) {
				t.Fatalf("%v, %d bytes; %v", err, len(got), b.srv)
			}
			if st.Retransmissions+st.Duplicates+st.OutOfOrder == 0 {
				t.Fatalf("the faults did not happen: %+v", st)
			}
			t.Logf("%+v; %v", st, b.srv)
		})
	}
}

func TestServerVariants(t *testing.T) {
	file := pattern(5000, 3)
	for _, tc := range []struct {
		name  string
		srv   func(*nettest.TFTPServer)
		opts  tftp.Options
		check func(t *testing.T, st tftp.Stats)
		want  error
	}{
		{name: "no options", srv: func(s *nettest.TFTPServer) { s.NoOptions = true }, opts: tftp.Options{BlockSize: 1468, WindowSize: 8},
			check: func(t *testing.T, st tftp.Stats) {
				if !st.OptionsIgnored || st.BlockSize != 512 || st.WindowSize != 1 {
					t.Fatalf("%+v", st)
				}
			}},
		{name: "options refused", srv: func(s *nettest.TFTPServer) { s.RefuseOptions = true }, opts: tftp.Options{BlockSize: 1468},
			check: func(t *testing.T, st tftp.Stats) {
				if !st.OptionsIgnored || st.BlockSize != 512 {
					t.Fatalf("%+v", st)
				}
			}},
		{name: "capped", srv: func(s *nettest.TFTPServer) { s.MaxBlockSize, s.MaxWindowSize = 1024, 4 }, opts: tftp.Options{BlockSize: 1468, WindowSize: 16},
			check: func(t *testing.T, st tftp.Stats) {
				if st.BlockSize != 1024 || st.WindowSize != 4 {
					t.Fatalf("%+v", st)
				}
			}},
		{name: "no tsize", srv: func(s *nettest.TFTPServer) { s.AnnounceSize = -1 }, opts: tftp.Options{}},
		{name: "wrong tsize", srv: func(s *nettest.TFTPServer) { s.AnnounceSize = 4000 }, want: tftp.ErrSize},
		{name: "huge tsize", srv: func(s *nettest.TFTPServer) { s.AnnounceSize = 1 << 40 }, want: tftp.ErrTooLarge},
		{name: "over the limit", srv: func(s *nettest.TFTPServer) { s.AnnounceSize = -1 }, opts: tftp.Options{MaxSize: 4096}, want: tftp.ErrTooLarge},
		{name: "extra option", srv: func(s *nettest.TFTPServer) { s.ExtraOACK = &tftp.Option{Name: "multicast", Value: "1"} }, want: tftp.ErrOptions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &nettest.TFTPServer{Files: map[string][]byte{"f": file}}
			tc.srv(srv)
			b := newBed(t, srv)
			got, st, err := b.fetch(t, tc.opts, "f")
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil || !bytes.Equal(got, file) {
				t.Fatalf("%v, %d bytes", err, len(got))
			}
			if tc.check != nil {
				tc.check(t, st)
			}
		})
	}
}

func TestClientRefusalReachesServer(t *testing.T) {
	b := newBed(t, &nettest.TFTPServer{Files: map[string][]byte{"f": pattern(10000, 1)}, AnnounceSize: -1})
	_, _, err := b.fetch(t, tftp.Options{MaxSize: 2000}, "f")
	if !errors.Is(err, tftp.ErrTooLarge) {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(b.srv.Stats().ClientErrors) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if ce := b.srv.Stats().ClientErrors; len(ce) != 1 || ce[0].ErrCode != tftp.ErrCodeDiskFull {
		t.Fatalf("client errors %+v", ce)
	}
}

func TestRollover(t *testing.T) {
	// More than 65535 blocks: block numbers wrap, to 0 or (some
	// servers) to 1.
	file := pattern(66000*8+3, 9)
	for _, to1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("to1=%v", to1), func(t *testing.T) {
			b := newBed(t, &nettest.TFTPServer{Files: map[string][]byte{"f": file}, RollOverTo1: to1})
			got, st, err := b.fetch(t, tftp.Options{BlockSize: 8, WindowSize: 64}, "f")
			if err != nil || !bytes.Equal(got, file) {
				t.Fatalf("%v, %d of %d bytes; %v", err, len(got), len(file), b.srv)
			}
			if st.Blocks != 66001 {
				t.Fatalf("%+v", st)
			}
		})
	}
}

func TestServerDiesMidTransfer(t *testing.T) {
	file := pattern(100000, 5)
	b := newBed(t, &nettest.TFTPServer{Files: map[string][]byte{"f": file}, StopAfter: 10})
	c := &tftp.Client{
		Listen:   func() (ipv4.PacketConn, error) { return b.client.Stack.ListenUDP(0) },
		Options:  tftp.Options{BlockSize: 1468, Timeout: 10 * time.Millisecond, MaxTimeout: 20 * time.Millisecond, Retries: 3},
		Attempts: 3,
	}
	start := time.Now()
	_, err := c.ReadFile(context.Background(), netip.AddrPortFrom(serverAddr.Addr(), tftp.Port), "f")
	if !errors.Is(err, tftp.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	if st := b.srv.Stats(); st.Requests != 3 {
		t.Fatalf("%d requests, want 3 attempts", st.Requests)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
	t.Log(err)
}

func TestConcurrentTransfers(t *testing.T) {
	files := map[string][]byte{}
	for i := range 4 {
		files[fmt.Sprint(i)] = pattern(50000+i, uint64(i))
	}
	b := newBed(t, &nettest.TFTPServer{Files: files})
	var wg sync.WaitGroup
	for name, want := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, _, err := b.fetch(t, tftp.Options{BlockSize: 1468, WindowSize: 4}, name)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	wg.Wait()
}
