package netboot_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot"
	"github.com/gopvgrub/gopvgrub/netboot/dhcp"
	"github.com/gopvgrub/gopvgrub/netboot/httpboot"
	"github.com/gopvgrub/gopvgrub/netboot/nettest"
	"github.com/gopvgrub/gopvgrub/netboot/tcp"
	"github.com/gopvgrub/gopvgrub/netboot/tftp"
)

var (
	dhcpMAC   = [6]byte{0x00, 0x16, 0x3e, 0, 0, 1}
	tftpMAC   = [6]byte{0x00, 0x16, 0x3e, 0, 0, 2}
	otherMAC  = [6]byte{0x00, 0x16, 0x3e, 0, 0, 3}
	clientMAC = [6]byte{0x00, 0x16, 0x3e, 0, 0, 4}
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // Location.String(), or the error
	}{
		{"(nd)/pxe/menu.lst", "(tftp)/pxe/menu.lst"},
		{"(ND)/x", "(tftp)/x"},
		{"(tftp)/boot/vmlinuz", "(tftp)/boot/vmlinuz"},
		{"(tftp,10.0.0.2)/boot/vmlinuz", "(tftp,10.0.0.2:69)/boot/vmlinuz"},
		{"(tftp,10.0.0.2:6969)/x", "(tftp,10.0.0.2:6969)/x"},
		{"(http,10.0.0.2)/x", "(http,10.0.0.2:80)/x"},
		{"http://10.0.0.2:8080/a/b", "(http,10.0.0.2:8080)/a/b"},
		{"http://10.0.0.2", "(http,10.0.0.2:80)/"},
		{"/pxe/menu.lst", "(tftp)/pxe/menu.lst"},
		{"pxelinux.0", "(tftp)pxelinux.0"},
		{"(hd0,0)/boot/grub/menu.lst", netboot.ErrNotNetwork.Error()},
		{"(nd,10.0.0.1)/x", netboot.ErrBadPath.Error()},
		{"(nd)", netboot.ErrBadPath.Error()},
		{"(nd)x", netboot.ErrBadPath.Error()},
		{"(nd/x", netboot.ErrBadPath.Error()},
		{"(tftp,boot.example.org)/x", netboot.ErrBadPath.Error()},
		{"(tftp,::1)/x", netboot.ErrBadPath.Error()},
		{"(tftp,10.0.0.1:0)/x", netboot.ErrBadPath.Error()},
		{"http://name/x", netboot.ErrBadPath.Error()},
		{"", netboot.ErrBadPath.Error()},
		{"a\x00b", netboot.ErrBadPath.Error()},
		{"a\nb", netboot.ErrBadPath.Error()},
		{strings.Repeat("a", 1025), netboot.ErrBadPath.Error()},
	} {
		l, err := netboot.ParsePath(tc.in)
		got := l.String()
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("ParsePath(%.40q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"(nd)/pxe/menu.lst", "(tftp,10.0.0.2:69)/x", "http://10.0.0.1/a", "/x", "(hd0,0)/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := netboot.ParsePath(s)
		if err != nil {
			return
		}
		if l.Path == "" || len(l.Path) > len(s)+1 || strings.ContainsAny(l.Path, "\x00\n") {
			t.Fatalf("%q -> %+v", s, l)
		}
		if l.Scheme != netboot.TFTP && l.Scheme != netboot.HTTP {
			t.Fatalf("scheme %q", l.Scheme)
		}
		if l.Server.IsValid() && (!l.Server.Addr().Is4() || l.Server.Port() == 0) {
			t.Fatalf("server %v", l.Server)
		}
		// What String prints parses to the same location (for
		// explicit-device forms).
		if strings.HasPrefix(s, "(") {
			l2, err := netboot.ParsePath(l.String())
			if err != nil || l2 != l {
				t.Fatalf("%q -> %v -> %v %v", s, l, l2, err)
			}
		}
	})
}

func TestCandidates(t *testing.T) {
	l := &dhcp.Lease{ConfigFile: "(nd)/menu.lst", PXEConfigFile: "pxelinux.cfg/default", PXEPathPrefix: "/tftpboot", BootFile: "pxelinux.0"}
	got := strings.Join(netboot.Candidates(l), " ")
	if got != "(nd)/menu.lst /tftpboot/pxelinux.cfg/default pxelinux.0" {
		t.Fatalf("Candidates = %s", got)
	}
	if c := netboot.Candidates(&dhcp.Lease{}); len(c) != 0 {
		t.Fatalf("empty lease: %v", c)
	}
}

// segment is a network with a DHCP server (10.0.0.1), a TFTP server at
// next-server (10.0.0.2), another TFTP server (10.0.0.3) and the client's
// port. 10.0.0.3 also serves HTTP on port 80 (package tcp).
type segment struct {
	hub         *nettest.Hub
	http        map[string][]byte // served over HTTP by 10.0.0.3
	dhcp        *nettest.DHCPServer
	tftp, other *nettest.TFTPServer
	client      *nettest.Port
}

func newNet(t *testing.T, options map[uint8][]byte, files map[string][]byte) *segment {
	t.Helper()
	h := nettest.NewHub()
	n := &segment{hub: h}
	ds, _ := h.NewStation(dhcpMAC, netip.MustParsePrefix("10.0.0.1/24"))
	ts, _ := h.NewStation(tftpMAC, netip.MustParsePrefix("10.0.0.2/24"))
	oth, _ := h.NewStation(otherMAC, netip.MustParsePrefix("10.0.0.3/24"))
	n.dhcp = &nettest.DHCPServer{
		Listen: ds.Listen, ServerID: netip.MustParseAddr("10.0.0.1"),
		Subnet: netip.MustParsePrefix("10.0.0.0/24"), Pool: netip.MustParseAddr("10.0.0.100"),
		NextServer: netip.MustParseAddr("10.0.0.2"), Options: options,
	}
	if err := n.dhcp.Start(); err != nil {
		t.Fatal(err)
	}
	n.tftp = &nettest.TFTPServer{Files: files, Listen: ts.Listen, Port: tftp.Port}
	n.other = &nettest.TFTPServer{Files: map[string][]byte{"/other": []byte("from 10.0.0.3")}, Listen: oth.Listen, Port: tftp.Port}
	for _, s := range []*nettest.TFTPServer{n.tftp, n.other} {
		if _, err := s.Start(); err != nil {
			t.Fatal(err)
		}
	}
	n.http = map[string][]byte{}
	web, err := tcp.New(oth.Stack)
	if err != nil {
		t.Fatal(err)
	}
	l, err := web.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if to, ok := strings.CutPrefix(r.URL.Path, "/redirect"); ok {
			http.Redirect(w, r, to, http.StatusFound)
			return
		}
		b, ok := n.http[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	n.client = h.NewPort(clientMAC, 1500)
	t.Cleanup(func() {
		l.Close()
		web.Close()
		n.dhcp.Close()
		n.tftp.Close()
		n.other.Close()
		ds.Close()
		ts.Close()
		oth.Close()
		n.client.Close()
	})
	return n
}

func fastConfig(path string) netboot.Config {
	return netboot.Config{
		Path: path,
		DHCP: dhcp.Config{Timeout: 20 * time.Millisecond, MaxTimeout: 40 * time.Millisecond, Attempts: 3},
		TFTP: tftp.Options{Timeout: 20 * time.Millisecond, MaxTimeout: 40 * time.Millisecond, Retries: 3},
	}
}

func boot(t *testing.T, n *segment, cfg netboot.Config) (*netboot.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var log []string
	cfg.Log = func(f string, a ...any) { log = append(log, f) }
	r, err := netboot.Boot(ctx, n.client, cfg)
	if err == nil {
		t.Cleanup(func() { r.Close() })
		if len(log) == 0 {
			t.Error("nothing logged")
		}
	}
	return r, err
}

const menu = "default 0\ntitle Debian\nkernel (nd)/vmlinuz root=/dev/xvda1\ninitrd (nd)/initrd.img\n"

func TestExtraPath(t *testing.T) {
	n := newNet(t, nil, map[string][]byte{"/pxe/menu.lst": []byte(menu), "/vmlinuz": []byte("KERNEL")})
	r, err := boot(t, n, fastConfig("(nd)/pxe/menu.lst"))
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Config) != menu || r.ConfigPath != "(nd)/pxe/menu.lst" || r.Server.String() != "10.0.0.2" ||
		r.Lease.Addr.String() != "10.0.0.100/24" {
		t.Fatalf("result %+v", r)
	}
	// The config's (nd) paths, and GRUB 2's forms, through Fetch.
	ctx := context.Background()
	if b, err := r.Fetch(ctx, "(nd)/vmlinuz"); err != nil || string(b) != "KERNEL" {
		t.Fatalf("Fetch (nd) = %q %v", b, err)
	}
	if b, err := r.Fetch(ctx, "(tftp,10.0.0.3)/other"); err != nil || string(b) != "from 10.0.0.3" {
		t.Fatalf("Fetch (tftp,server) = %q %v", b, err)
	}
	if _, err := r.Fetch(ctx, "(nd)/missing"); !errors.As(err, new(*tftp.ServerError)) {
		t.Fatalf("missing: %v", err)
	}
	n.http["/vmlinuz"] = []byte("HTTP KERNEL")
	for _, p := range []string{"(http,10.0.0.3)/vmlinuz", "http://10.0.0.3/vmlinuz", "http://10.0.0.3:80/redirect/vmlinuz"} {
		if b, err := r.Fetch(ctx, p); err != nil || string(b) != "HTTP KERNEL" {
			t.Fatalf("Fetch %s = %q %v", p, b, err)
		}
	}
	if _, err := r.Fetch(ctx, "(http,10.0.0.3)/missing"); !errors.Is(err, httpboot.ErrStatus) {
		t.Fatalf("http missing: %v", err)
	}
	if _, err := r.FetchWith(ctx, "(http,10.0.0.3)/vmlinuz", tftp.Options{MaxSize: 4}); !errors.Is(err, httpboot.ErrTooLarge) {
		t.Fatalf("http over MaxSize: %v", err)
	}
	if _, err := r.Fetch(ctx, "(hd0,0)/vmlinuz"); !errors.Is(err, netboot.ErrNotNetwork) {
		t.Fatalf("disk: %v", err)
	}
	// The negotiated block size fits the MTU.
	if st := n.tftp.Stats(); len(st.Options) == 0 || st.Options[0][0].Value != "1468" {
		t.Fatalf("options %+v", st.Options)
	}
	// FetchWith's options reach the server; a size limit below the file
	// refuses it.
	if b, err := r.FetchWith(ctx, "(nd)/vmlinuz", tftp.Options{BlockSize: 1000, WindowSize: 4}); err != nil || string(b) != "KERNEL" {
		t.Fatalf("FetchWith = %q %v", b, err)
	}
	st := n.tftp.Stats()
	last := st.Options[len(st.Options)-1]
	if got := fmt.Sprint(last); !strings.Contains(got, "blksize 1000") || !strings.Contains(got, "windowsize 4") {
		t.Fatalf("FetchWith sent options %v", got)
	}
	// Options left 0 are Boot's, not TFTP's 512-byte blocks.
	if _, err := r.FetchWith(ctx, "(nd)/vmlinuz", tftp.Options{WindowSize: 2}); err != nil {
		t.Fatal(err)
	}
	st = n.tftp.Stats()
	last = st.Options[len(st.Options)-1]
	if got := fmt.Sprint(last); !strings.Contains(got, "blksize 1468") || !strings.Contains(got, "windowsize 2") {
		t.Fatalf("FetchWith with defaults sent options %v", got)
	}
	if _, err := r.FetchWith(ctx, "(nd)/vmlinuz", tftp.Options{MaxSize: 3}); !errors.Is(err, tftp.ErrTooLarge) {
		t.Fatalf("FetchWith over MaxSize: %v", err)
	}
	r.Close()
	if _, err := r.Fetch(ctx, "(nd)/vmlinuz"); !errors.Is(err, netboot.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestExtraHTTP(t *testing.T) {
	n := newNet(t, nil, nil)
	n.http["/pxe/menu.lst"] = []byte(menu)
	r, err := boot(t, n, fastConfig("http://10.0.0.3/pxe/menu.lst"))
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Config) != menu {
		t.Fatalf("config %q", r.Config)
	}
	n.http["/initrd.img"] = make([]byte, 3<<20)
	if b, err := r.Fetch(context.Background(), "(http,10.0.0.3)/initrd.img"); err != nil || len(b) != 3<<20 {
		t.Fatalf("initrd: %d bytes, %v", len(b), err)
	}
	r.Close()
	if _, err := r.Fetch(context.Background(), "(http,10.0.0.3)/initrd.img"); !errors.Is(err, netboot.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestConfigFromDHCP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		options map[uint8][]byte
		files   map[string][]byte
		want    string            // ConfigPath
		http    map[string][]byte // on 10.0.0.3
	}{
		{"option 150", map[uint8][]byte{150: []byte("(nd)/grub/menu.lst"), 67: []byte("pxelinux.0")},
			map[string][]byte{"/grub/menu.lst": []byte(menu), "pxelinux.0": []byte("binary")}, "(nd)/grub/menu.lst", nil},
		{"option 150 missing on the server", map[uint8][]byte{150: []byte("(nd)/grub/menu.lst"), 67: []byte("menu.lst")},
			map[string][]byte{"menu.lst": []byte(menu)}, "menu.lst", nil},
		{"pxelinux 209/210", map[uint8][]byte{209: []byte("cfg/default"), 210: []byte("/tftpboot/")},
			map[string][]byte{"/tftpboot/cfg/default": []byte(menu)}, "/tftpboot/cfg/default", nil},
		{"boot file", map[uint8][]byte{67: []byte("/boot/menu.lst")},
			map[string][]byte{"/boot/menu.lst": []byte(menu)}, "/boot/menu.lst", nil},
		{"unparsable 150 skipped", map[uint8][]byte{150: []byte("(hd0,0)/menu.lst"), 67: []byte("/boot/menu.lst")},
			map[string][]byte{"/boot/menu.lst": []byte(menu)}, "/boot/menu.lst", nil},
		{"boot file over HTTP", map[uint8][]byte{67: []byte("http://10.0.0.3/boot/menu.lst")},
			nil, "http://10.0.0.3/boot/menu.lst", map[string][]byte{"/boot/menu.lst": []byte(menu)}},
		{"HTTP 404 then the next name", map[uint8][]byte{150: []byte("(http,10.0.0.3)/missing"), 67: []byte("/boot/menu.lst")},
			map[string][]byte{"/boot/menu.lst": []byte(menu)}, "/boot/menu.lst", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, tc.options, tc.files)
			for k, v := range tc.http {
				n.http[k] = v
			}
			r, err := boot(t, n, fastConfig(""))
			if err != nil {
				t.Fatal(err)
			}
			if r.ConfigPath != tc.want || string(r.Config) != menu {
				t.Fatalf("ConfigPath %q, config %q", r.ConfigPath, r.Config)
			}
		})
	}
}

func TestBootFailures(t *testing.T) {
	n := newNet(t, nil, map[string][]byte{})
	if _, err := boot(t, n, fastConfig("")); !errors.Is(err, netboot.ErrNoConfig) {
		t.Fatalf("no config: %v", err)
	}
	n = newNet(t, map[uint8][]byte{150: []byte("(nd)/a"), 67: []byte("b")}, map[string][]byte{})
	_, err := boot(t, n, fastConfig(""))
	if !errors.As(err, new(*tftp.ServerError)) || !strings.Contains(err.Error(), "/a") || !strings.Contains(err.Error(), "b") {
		t.Fatalf("all missing: %v", err)
	}
	if _, err := boot(t, n, fastConfig("(hd0,0)/menu.lst")); !errors.Is(err, netboot.ErrNotNetwork) {
		t.Fatalf("disk path: %v", err)
	}
	// A file over the config limit.
	n = newNet(t, nil, map[string][]byte{"/big": make([]byte, 5000)})
	cfg := fastConfig("(nd)/big")
	cfg.MaxConfigSize = 4096
	if _, err := boot(t, n, cfg); !errors.Is(err, tftp.ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	// The same over HTTP: the body is refused, nothing more is read.
	n.http["/big"] = make([]byte, 5000)
	cfg.Path = "http://10.0.0.3/big"
	if _, err := boot(t, n, cfg); !errors.Is(err, httpboot.ErrTooLarge) {
		t.Fatalf("too large over HTTP: %v", err)
	}
	// No DHCP server.
	n = newNet(t, nil, nil)
	n.dhcp.Close()
	if _, err := boot(t, n, fastConfig("(nd)/x")); !errors.Is(err, dhcp.ErrNoOffer) {
		t.Fatalf("no dhcp: %v", err)
	}
	// The TFTP server is gone: a clear error, no hang.
	n = newNet(t, nil, map[string][]byte{"/x": []byte("x")})
	n.tftp.Close()
	start := time.Now()
	_, err = boot(t, n, fastConfig("(nd)/x"))
	if !errors.Is(err, tftp.ErrTimeout) || time.Since(start) > 10*time.Second {
		t.Fatalf("tftp gone: %v after %v", err, time.Since(start))
	}
	t.Log(err)
}
