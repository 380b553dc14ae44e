package blkfront

import "testing"

func TestParseVirtualDevice(t *testing.T) {
	for _, tc := range []struct {
		v    uint32
		name string
		ok   bool
	}{
		{202<<8 | 0<<4, "xvda", true},
		{51712, "xvda", true},
		{51713, "xvda1", true},
		{51728, "xvdb", true},
		{51727, "xvda15", true},
		{202<<8 | 15<<4, "xvdp", true},
		{1<<28 | 16<<8, "xvdq", true},
		{1<<28 | 25<<8 | 3, "xvdz3", true},
		{1<<28 | 26<<8, "xvdaa", true},
		{1<<28 | 27<<8 | 255, "xvdab255", true},
		{1<<28 | 701<<8, "xvdzz", true},
		{1<<28 | 702<<8, "xvdaaa", true},
		{1<<28 | 0xfffff<<8, "xvdbgqcv", true},
		{8 << 8, "sda", true},
		{2049, "sda1", true},
		{8<<8 | 15<<4 | 15, "sdp15", true},
		{65 << 8, "sdq", true},
		{71<<8 | 15<<4, "sddx", true},
		{128 << 8, "sddy", true},
		{3 << 8, "hda", true},
		{768, "hda", true},
		{832, "hdb", true},
		{3<<8 | 1<<6 | 63, "hdb63", true},
		{5632, "hdc", true},
		{5696, "hdd", true},
		{22<<8 | 1, "hdc1", true},
		{0, "vbd0", false},
		{1, "vbd1", false},
		{4 << 8, "vbd1024", false},
		{2 << 28, "vbd536870912", false},
		{0xffffffff, "vbd4294967295", false},
		{0x0fffff00, "vbd268435200", false},
	} {
		vd, ok := ParseVirtualDevice(tc.v)
		if ok != tc.ok || DeviceName(tc.v) != tc.name {
			t.Errorf("%d (%#x): %+v %v, name %q; want %q %v", tc.v, tc.v, vd, ok, DeviceName(tc.v), tc.name, tc.ok)
		}
	}
}

// TestDiskLettersBijective: every disk number has its own name and the
// names run in order a..z, aa..zz, aaa.
func TestDiskLettersBijective(t *testing.T) {
	seen := map[string]int{}
	prev := ""
	for n := 0; n < 26+26*26+26*26*26; n++ {
		s := diskLetters(n)
		if m, dup := seen[s]; dup {
			t.Fatalf("%d and %d are both %q", m, n, s)
		}
		seen[s] = n
		if len(s) < len(prev) || len(s) == len(prev) && s <= prev {
			t.Fatalf("%d: %q does not follow %q", n, s, prev)
		}
		prev = s
	}
}

func FuzzParseVirtualDevice(f *testing.F) {
	f.Add(uint32(51712))
	f.Add(uint32(1<<28 | 0xfffff<<8 | 0xff))
	f.Fuzz(func(t *testing.T, v uint32) {
		vd, ok := ParseVirtualDevice(v)
		name := DeviceName(v)
		if ok && (vd.Disk < 0 || vd.Partition < 0 || name == "" || len(name) > 16) {
			t.Fatalf("%#x: %+v %q", v, vd, name)
		}
	})
}
