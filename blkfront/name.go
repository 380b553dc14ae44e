package blkfront

import "strconv"

// VirtualDevice is a decoded "virtual-device" number, the Linux-style
// device the toolstack asked the guest to see (Xen's
// docs/misc/vbd-interface.txt):
//
//	1 << 28 | disk << 8 | partition      xvd, disks or partitions 16 onwards
//	202 << 8 | disk << 4 | partition     xvd, disks and partitions up to 15
//	8 << 8 | disk << 4 | partition       sd, disks and partitions up to 15
//	3 << 8 | disk << 6 | partition       hd, disks 0..1, partitions 0..63
//	22 << 8 | (disk-2) << 6 | partition  hd, disks 2..3, partitions 0..63
//
// plus the further SCSI majors Linux uses for sd disks 16-255 (65-71,
// 128-135). Values from 2 << 28 on are reserved; other small values
// are the deprecated "raw" numbering and are not decoded.
type VirtualDevice struct {
	Prefix    string // "xvd", "sd" or "hd"
	Disk      int    // 0 for the first disk ("a")
	Partition int    // 0 for the whole disk
}

// ParseVirtualDevice decodes v; ok is false for reserved and
// deprecated numbers.
func ParseVirtualDevice(v uint32) (vd VirtualDevice, ok bool) {
	switch v >> 28 {
	case 0:
	case 1:
		return VirtualDevice{"xvd", int(v>>8) & 0xfffff, int(v & 0xff)}, true
	default:
		return VirtualDevice{}, false
	}
	major, minor := int(v>>8), int(v&0xff)
	switch {
	case major == 202:
		return VirtualDevice{"xvd", minor >> 4, minor & 15}, true
	case major == 8:
		return VirtualDevice{"sd", minor >> 4, minor & 15}, true
	case major >= 65 && major <= 71:
		return VirtualDevice{"sd", 16 + (major-65)*16 + minor>>4, minor & 15}, true
	case major >= 128 && major <= 135:
		return VirtualDevice{"sd", 128 + (major-128)*16 + minor>>4, minor & 15}, true
	case major == 3:
		return VirtualDevice{"hd", minor >> 6, minor & 63}, true
	case major == 22:
		return VirtualDevice{"hd", 2 + minor>>6, minor & 63}, true
	}
	return VirtualDevice{}, false
}

// String is the Linux name: prefix, the disk number in letters (a..z,
// aa..zz, aaa…) and the partition number unless it is 0: "xvda",
// "xvdb1", "sdaa", "hdc".
func (v VirtualDevice) String() string {
	return v.Prefix + diskLetters(v.Disk) + partSuffix(v.Partition)
}

// diskLetters writes n in bijective base 26: 0 is "a", 25 "z", 26 "aa".
func diskLetters(n int) string {
	var b [8]byte
	i := len(b)
	for {
		i--
		b[i] = byte('a' + n%26)
		n = n/26 - 1
		if n < 0 {
			break
		}
	}
	return string(b[i:])
}

func partSuffix(p int) string {
	if p == 0 {
		return ""
	}
	return strconv.Itoa(p)
}

// DeviceName is the name of virtual-device number v: the Linux name when
// v decodes, else "vbd" and the number.
func DeviceName(v uint32) string {
	if vd, ok := ParseVirtualDevice(v); ok {
		return vd.String()
	}
	return "vbd" + strconv.FormatUint(uint64(v), 10)
}
