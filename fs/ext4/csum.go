package ext4

import "hash/crc32"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c continues a CRC32C the way Linux's crc32c() does: no inversion
// on entry or exit (hash/crc32 inverts both, so undo that).
func crc32c(crc uint32, p []byte) uint32 {
	return ^crc32.Update(^crc, castagnoli, p)
}

// crc16 is the CRC-16/ARC (polynomial 0x8005, reflected) that ext4's
// gdt_csum uses; the standard library has none.
func crc16(crc uint16, p []byte) uint16 {
	for _, b := range p {
		crc ^= uint16(b)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
