package nettest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
	"github.com/gopvgrub/gopvgrub/netboot/tftp"
)

// TFTPServer is a fake TFTP server (RFC 1350, 2347-2349, 7440) serving
// files from memory, with knobs to misbehave. Each request is served from
// a fresh port, as real servers do.
type TFTPServer struct {
	// Files maps names to contents. A leading "/" in a request is
	// ignored if the name is not found with it.
	Files map[string][]byte
	// Listen binds a UDP port (0: any), e.g. Station.Listen or
	// LoopbackListener().
	Listen func(port uint16) (ipv4.PacketConn, error)
	// Port is the request port (69 on a Station; 0 on loopback).
	Port uint16

	// NoOptions ignores every option (a plain RFC 1350 server).
	NoOptions bool
	// RefuseOptions answers a request with options by ERROR 8.
	RefuseOptions bool
	// MaxBlockSize and MaxWindowSize cap what is granted (0: no cap).
	MaxBlockSize, MaxWindowSize int
	// AnnounceSize, if not 0, is announced as tsize instead of the real
	// size; -1 announces none.
	AnnounceSize int64
	// RollOverTo1 numbers blocks 65535, 1, 2… rather than 65535, 0, 1…
	RollOverTo1 bool
	// StopAfter makes a transfer die silently after sending that many
	// DATA packets (0: never), as a killed server does.
	StopAfter int
	// ExtraOACK adds an option nobody asked for to the OACK.
	ExtraOACK *tftp.Option
	// Timeout and Retries drive the server's retransmissions
	// (defaults 100ms and 5).
	Timeout time.Duration
	Retries int

	mu     sync.Mutex
	conn   ipv4.PacketConn
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stats  TFTPStats
}

// TFTPStats records what the server saw.
type TFTPStats struct {
	Requests     int
	Completed    int
	DataSent     int
	Retransmits  int
	Options      [][]tftp.Option // of each request
	ClientErrors []tftp.Packet   // ERROR packets clients sent
}

// Start binds the request port and serves until Close. It returns the
// port actually bound.
func (s *TFTPServer) Start() (uint16, error) {
	conn, err := s.Listen(s.Port)
	if err != nil {
		return 0, err
	}
	port := s.Port
	if lp, ok := conn.(interface{ LocalPort() uint16 }); ok {
		port = lp.LocalPort()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.conn, s.cancel = conn, cancel
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serve(ctx, conn)
	}()
	return port, nil
}

// Close stops the server and waits for its transfers to end.
func (s *TFTPServer) Close() {
	s.mu.Lock()
	cancel, conn := s.cancel, s.conn
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		conn.Close()
	}
	s.wg.Wait()
}

// Stats returns a copy of the statistics.
func (s *TFTPServer) Stats() TFTPStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Options = append([][]tftp.Option(nil), st.Options...)
	st.ClientErrors = append([]tftp.Packet(nil), st.ClientErrors...)
	return st
}

func (s *TFTPServer) count(f func(*TFTPStats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

func (s *TFTPServer) serve(ctx context.Context, conn ipv4.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := conn.ReadFrom(ctx, buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ipv4.ErrClosed) || errors.Is(err, ErrClosed) {
				return
			}
			continue
		}
		p, err := tftp.ParsePacket(buf[:n])
		if err != nil || p.Op != tftp.OpRRQ {
			continue
		}
		s.count(func(st *TFTPStats) { st.Requests++; st.Options = append(st.Options, p.Options) })
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.transfer(ctx, p, from)
		}()
	}
}

type tftpTransfer struct {
	s      *TFTPServer
	conn   ipv4.PacketConn
	client netip.AddrPort
	buf    []byte
}

func (t *tftpTransfer) send(ctx context.Context, p tftp.Packet) {
	t.conn.WriteTo(ctx, p.Append(nil), t.client)
}

// await reads until a packet from the client arrives (answering strays with
// ERROR 5) or the timeout passes.
func (t *tftpTransfer) await(ctx context.Context, timeout time.Duration) (tftp.Packet, bool) {
	deadline := time.Now().Add(timeout)
	for {
		rctx, cancel := context.WithDeadline(ctx, deadline)
		n, from, err := t.conn.ReadFrom(rctx, t.buf)
		cancel()
		if err != nil {
			return tftp.Packet{}, false
		}
		if from != t.client {
			t.conn.WriteTo(ctx, tftp.Packet{Op: tftp.OpERROR, ErrCode: tftp.ErrCodeUnknownTID, ErrMsg: "unknown transfer ID"}.Append(nil), from)
			continue
		}
		p, err := tftp.ParsePacket(t.buf[:n])
		if err != nil {
			continue
		}
		if p.Op == tftp.OpERROR {
			t.s.count(func(st *TFTPStats) { st.ClientErrors = append(st.ClientErrors, p) })
		}
		return p, true
	}
}

func (s *TFTPServer) transfer(ctx context.Context, req tftp.Packet, client netip.AddrPort) {
	conn, err := s.Listen(0)
	if err != nil {
		return
	}
	defer conn.Close()
	t := &tftpTransfer{s: s, conn: conn, client: client, buf: make([]byte, 2048)}
	timeout, retries := s.Timeout, s.Retries
	if timeout <= 0 {
		timeout = 100 * time.Millisecond
	}
	if retries <= 0 {
		retries = 5
	}
	data, ok := s.Files[req.Filename]
	if !ok {
		data, ok = s.Files[strings.TrimPrefix(req.Filename, "/")]
	}
	if !ok {
		t.send(ctx, tftp.Packet{Op: tftp.OpERROR, ErrCode: tftp.ErrCodeNotFound, ErrMsg: "File not found"})
		return
	}
	if !strings.EqualFold(req.Mode, "octet") {
		t.send(ctx, tftp.Packet{Op: tftp.OpERROR, ErrCode: tftp.ErrCodeIllegalOp, ErrMsg: "only octet mode"})
		return
	}
	blksize, window := tftp.DefaultBlockSize, 1
	if len(req.Options) > 0 && !s.NoOptions {
		if s.RefuseOptions {
			t.send(ctx, tftp.Packet{Op: tftp.OpERROR, ErrCode: tftp.ErrCodeOptionRefused, ErrMsg: "no options"})
			return
		}
		var oack []tftp.Option
		for _, o := range req.Options {
			v, err := strconv.ParseInt(o.Value, 10, 64)
			if err != nil {
				continue
			}
			switch o.Name {
			case tftp.OptBlockSize:
				blksize = int(min(max(v, tftp.MinBlockSize), tftp.MaxBlockSize))
				if s.MaxBlockSize > 0 {
					blksize = min(blksize, s.MaxBlockSize)
				}
				oack = append(oack, tftp.Option{Name: o.Name, Value: strconv.Itoa(blksize)})
			case tftp.OptWindowSize:
				window = int(min(max(v, 1), tftp.MaxWindowSize))
				if s.MaxWindowSize > 0 {
					window = min(window, s.MaxWindowSize)
				}
				oack = append(oack, tftp.Option{Name: o.Name, Value: strconv.Itoa(window)})
			case tftp.OptTimeout:
				oack = append(oack, o)
			case tftp.OptTransfer:
				size := int64(len(data))
				if s.AnnounceSize == -1 {
					continue
				}
				if s.AnnounceSize != 0 {
					size = s.AnnounceSize
				}
				oack = append(oack, tftp.Option{Name: o.Name, Value: strconv.FormatInt(size, 10)})
			}
		}
		if s.ExtraOACK != nil {
			oack = append(oack, *s.ExtraOACK)
		}
		if len(oack) > 0 {
			acked := false
			for try := 0; try <= retries && !acked; try++ {
				if try > 0 {
					s.count(func(st *TFTPStats) { st.Retransmits++ })
				}
				t.send(ctx, tftp.Packet{Op: tftp.OpOACK, Options: oack})
				for {
					p, ok := t.await(ctx, timeout)
					if !ok {
						break
					}
					if p.Op == tftp.OpERROR {
						return
					}
					if p.Op == tftp.OpACK && p.Block == 0 {
						acked = true
						break
					}
				}
			}
			if !acked {
				return
			}
		}
	}
	s.sendData(ctx, t, data, blksize, window, timeout, retries)
}

func (s *TFTPServer) wire(k int64) uint16 {
	if s.RollOverTo1 && k > 0 {
		return uint16((k-1)%65535 + 1)
	}
	return uint16(k)
}

func (s *TFTPServer) sendData(ctx context.Context, t *tftpTransfer, data []byte, blksize, window int, timeout time.Duration, retries int) {
	nblocks := int64(len(data)/blksize) + 1
	base := int64(1) // first unacknowledged block
	sent := 0
	for tries := 0; base <= nblocks; {
		last := min(base+int64(window)-1, nblocks)
		for k := base; k <= last; k++ {
			if s.StopAfter > 0 && sent >= s.StopAfter {
				return
			}
			off := (k - 1) * int64(blksize)
			end := min(off+int64(blksize), int64(len(data)))
			t.send(ctx, tftp.Packet{Op: tftp.OpDATA, Block: s.wire(k), Data: data[off:end]})
			sent++
			s.count(func(st *TFTPStats) { st.DataSent++ })
		}
		// Wait for an ACK that moves base forward. Duplicate ACKs
		// never cause a retransmission (no sorcerer's apprentice),
		// except that with a window an ACK of base-1 is the client
		// asking for the window again.
		moved := false
		for !moved {
			p, ok := t.await(ctx, timeout)
			if !ok {
				break
			}
			if p.Op == tftp.OpERROR {
				return
			}
			if p.Op != tftp.OpACK {
				continue
			}
			for k := base - 1; k <= last; k++ {
				if s.wire(k) == p.Block {
					if k >= base {
						base, moved = k+1, true
					} else if window > 1 {
						moved = true // resend from base
					}
					break
				}
			}
		}
		if moved {
			tries = 0
			continue
		}
		if ctx.Err() != nil || tries >= retries {
			return
		}
		tries++
		s.count(func(st *TFTPStats) { st.Retransmits++ })
	}
	s.count(func(st *TFTPStats) { st.Completed++ })
}

// String describes the server for test logs.
func (s *TFTPServer) String() string {
	st := s.Stats()
	return fmt.Sprintf("tftp server: %d requests, %d completed, %d data, %d retransmits, client errors %v",
		st.Requests, st.Completed, st.DataSent, st.Retransmits, st.ClientErrors)
}
