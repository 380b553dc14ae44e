package netif

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
	"github.com/gopvgrub/gopvgrub/xen/sring"
)

// field is where an encoder puts a field: found by encoding a value with
// only that field set to all ones.
type field struct {
	c    string // as printed by testdata/offsets.c
	off  int
	size int
}

// locate returns the offset and size of the non-zero bytes of b.
func locate(b []byte) (int, int) {
	first, last := -1, -1
	for i, c := range b {
		if c != 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return first, last - first + 1
}

func fields() []field {
	var out []field
	add := func(c string, put func([]byte), n int) {
		b := make([]byte, n)
		put(b)
		off, size := locate(b)
		out = append(out, field{c, off, size})
	}
	add("netif_tx_request.gref", func(b []byte) { TxRequest{Gref: ^uint32(0)}.Put(b) }, TxSlotSize)
	add("netif_tx_request.offset", func(b []byte) { TxRequest{Offset: 0xffff}.Put(b) }, TxSlotSize)
	add("netif_tx_request.flags", func(b []byte) { TxRequest{Flags: 0xffff}.Put(b) }, TxSlotSize)
	add("netif_tx_request.id", func(b []byte) { TxRequest{ID: 0xffff}.Put(b) }, TxSlotSize)
	add("netif_tx_request.size", func(b []byte) { TxRequest{Size: 0xffff}.Put(b) }, TxSlotSize)
	add("netif_tx_response.id", func(b []byte) { TxResponse{ID: 0xffff}.Put(b) }, 4)
	add("netif_tx_response.status", func(b []byte) { TxResponse{Status: -1}.Put(b) }, 4)
	add("netif_rx_request.id", func(b []byte) { RxRequest{ID: 0xffff}.Put(b) }, RxSlotSize)
	add("netif_rx_request.gref", func(b []byte) { RxRequest{Gref: ^uint32(0)}.Put(b) }, RxSlotSize)
	add("netif_rx_response.id", func(b []byte) { RxResponse{ID: 0xffff}.Put(b) }, RxSlotSize)
	add("netif_rx_response.offset", func(b []byte) { RxResponse{Offset: 0xffff}.Put(b) }, RxSlotSize)
	add("netif_rx_response.flags", func(b []byte) { RxResponse{Flags: 0xffff}.Put(b) }, RxSlotSize)
	add("netif_rx_response.status", func(b []byte) { RxResponse{Status: -1}.Put(b) }, RxSlotSize)
	add("netif_extra_info.type", func(b []byte) { Extra{Type: 0xff}.Put(b) }, ExtraSize)
	add("netif_extra_info.flags", func(b []byte) { Extra{Flags: 0xff}.Put(b) }, ExtraSize)
	add("netif_extra_info.u.gso.size", func(b []byte) { e := GSO(0xffff, 0, 0); e.Type = 0; e.Put(b) }, ExtraSize)
	add("netif_extra_info.u.gso.type", func(b []byte) { e := GSO(0, 0xff, 0); e.Type = 0; e.Put(b) }, ExtraSize)
	add("netif_extra_info.u.gso.features", func(b []byte) { e := GSO(0, 0, 0xffff); e.Type = 0; e.Put(b) }, ExtraSize)
	add("netif_extra_info.u.mcast.addr", func(b []byte) { Extra{Data: [6]byte{1, 1, 1, 1, 1, 1}}.Put(b) }, ExtraSize)
	return out
}

// TestLayoutWithGCC compiles testdata/offsets.c against /usr/include/xen
// and checks every encoder and constant against what gcc says.
func TestLayoutWithGCC(t *testing.T) {
	testassets.NeedTools(t, "gcc")
	if _, err := exec.Command("sh", "-c", "test -f /usr/include/xen/io/netif.h").CombinedOutput(); err != nil {
		testassets.Missing(t, "/usr/include/xen/io/netif.h (libxen-dev)")
	}
	bin := filepath.Join(t.TempDir(), "offsets")
	if out, err := exec.Command("gcc", "-Wall", "-D__XEN_INTERFACE_VERSION__=0x00040e00", "-o", bin, "testdata/offsets.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	gcc := map[string][2]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		a, _ := strconv.Atoi(f[1])
		b, _ := strconv.Atoi(f[2])
		gcc[f[0]] = [2]int{a, b}
	}
	for _, f := range fields() {
		g, ok := gcc[f.c]
		if !ok {
			t.Errorf("%s: not printed", f.c)
		} else if g != [2]int{f.off, f.size} {
			t.Errorf("%s: gcc %v, encoder puts it at %d size %d", f.c, g, f.off, f.size)
		}
	}
	for name, want := range map[string]int{
		"netif_tx_request": TxSlotSize, "netif_rx_request": RxSlotSize, "netif_rx_response": RxSlotSize,
		"netif_extra_info": ExtraSize, "tx_slot": TxSlotSize, "rx_slot": RxSlotSize,
	} {
		if g := gcc[name][1]; g != want {
			t.Errorf("sizeof %s: gcc %d, we %d", name, g, want)
		}
	}
	for name, want := range map[string]int{
		"tx_ring_size": TxRingSize, "rx_ring_size": RxRingSize, "NETTXF_more_data": TxMoreData,
		"NETRXF_extra_info": RxExtraInfo, "NETRXF_gso_prefix": RxGSOPrefix, "XEN_NETIF_EXTRA_TYPE_MAX": ExtraTypeMax,
		"NETIF_RSP_NULL": RspNull, "NETIF_RSP_DROPPED": RspDropped,
	} {
		if g := gcc[name][0]; g != want {
			t.Errorf("%s: gcc %d, we %d", name, g, want)
		}
	}
}

func TestRingSizes(t *testing.T) {
	if n := sring.Slots(ringPage, TxSlotSize); n != TxRingSize {
		t.Errorf("tx: %d slots", n)
	}
	if n := sring.Slots(ringPage, RxSlotSize); n != RxRingSize {
		t.Errorf("rx: %d slots", n)
	}
	if sring.HeaderSize != ringHeader {
		t.Errorf("header %d", sring.HeaderSize)
	}
}

func TestRoundTrips(t *testing.T) {
	b := make([]byte, TxSlotSize)
	tx := TxRequest{Gref: 0x01020304, Offset: 0x0506, Flags: TxMoreData, ID: 7, Size: 1514}
	tx.Put(b)
	if ParseTxRequest(b) != tx {
		t.Fatal("tx request")
	}
	if b[0] != 4 || binary.LittleEndian.Uint16(b[10:]) != 1514 {
		t.Fatalf("little-endian: %x", b)
	}
	txr := TxResponse{ID: 9, Status: RspDropped}
	txr.Put(b)
	if ParseTxResponse(b) != txr {
		t.Fatal("tx response")
	}
	rx := RxRequest{ID: 255, Gref: 77}
	rx.Put(b)
	if ParseRxRequest(b) != rx {
		t.Fatal("rx request")
	}
	rxr := RxResponse{ID: 3, Offset: 64, Flags: RxMoreData | RxCsumBlank, Status: 1500}
	rxr.Put(b)
	if ParseRxResponse(b) != rxr {
		t.Fatal("rx response")
	}
	e := GSO(1448, 1, 0)
	e.Flags = ExtraFlagMore
	e.Put(b)
	if ParseExtra(b) != e {
		t.Fatal("extra")
	}
}
