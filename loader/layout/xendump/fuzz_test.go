package xendump

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: Parse reads console output, which a broken or hostile guest
// writes. It must not panic or hang; whatever it accepts must write back
// to text that parses to the same dump, and compare without panicking.
func FuzzParse(f *testing.F) {
	_, d := planDump(f, gopvgrub, domain(64, 16<<20+123))
	text := dumpText(f, d)
	f.Add([]byte(text))
	f.Add([]byte(console(text)))
	f.Add([]byte(text[:len(text)/2]))
	_, l := planDump(f, linux, domain(512, 40<<20))
	l.Golden = &Golden{Image: linux, InitrdSize: 40 << 20, ModLen: ModLenPages}
	f.Add([]byte(dumpText(f, l)))
	f.Add([]byte("LAYOUT xen 4.17\r\nLAYOUT map_end 0x0\r\nLAYOUT done\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := Parse(bytes.NewReader(in))
		if err != nil {
			return
		}
		var b strings.Builder
		if _, err := d.WriteTo(&b); err != nil {
			t.Fatalf("WriteTo of a parsed dump: %v", err)
		}
		d2, err := Parse(strings.NewReader(b.String()))
		if err != nil || !reflect.DeepEqual(d, d2) {
			t.Fatalf("round trip: %v\n%s", err, b.String())
		}
		if d.Golden != nil {
			CompareGolden(d)
		} else {
			Compare(d, gopvgrub, 1<<20)
		}
	})
}
