/*
 * Fills the io/blkif.h structures with known values and prints their
 * bytes as "name hex" lines; blkif_test.go encodes the same values in Go
 * and compares. Padding is zeroed first, as the Go encoders zero it.
 */
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/io/blkif.h>

static void dump(const char *name, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	printf("%s ", name);
	for (i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\n");
}

int main(void)
{
	struct blkif_request r;
	struct blkif_request_indirect ir;
	struct blkif_response rsp;
	struct blkif_request_segment seg;
	union blkif_sring_entry e;
	int i;

	memset(&r, 0, sizeof(r));
	r.operation = BLKIF_OP_READ;
	r.nr_segments = BLKIF_MAX_SEGMENTS_PER_REQUEST;
	r.handle = 51712;
	r.id = 0x0102030405060708ULL;
	r.sector_number = 0x1122334455667788ULL;
	for (i = 0; i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++) {
		r.seg[i].gref = 0xa0b0c000u + i;
		r.seg[i].first_sect = i % 8;
		r.seg[i].last_sect = 7;
	}
	dump("request", &r, sizeof(r));

	memset(&ir, 0, sizeof(ir));
	ir.operation = BLKIF_OP_INDIRECT;
	ir.indirect_op = BLKIF_OP_READ;
	ir.nr_segments = 4096;
	ir.id = 0xfedcba9876543210ULL;
	ir.sector_number = 0x0000000100000002ULL;
	ir.handle = 0x1234;
	for (i = 0; i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++)
		ir.indirect_grefs[i] = 0x100 + i;
	dump("indirect", &ir, sizeof(ir));

	memset(&rsp, 0, sizeof(rsp));
	rsp.id = 0x8877665544332211ULL;
	rsp.operation = BLKIF_OP_INDIRECT;
	rsp.status = BLKIF_RSP_EOPNOTSUPP;
	dump("response", &rsp, sizeof(rsp));

	memset(&seg, 0, sizeof(seg));
	seg.gref = 0xdeadbeef;
	seg.first_sect = 3;
	seg.last_sect = 6;
	dump("segment", &seg, sizeof(seg));

	printf("slot %zu\n", sizeof(e));
	printf("constants %d %d %d %d %d %d %d %d %d %d\n", BLKIF_OP_READ, BLKIF_OP_WRITE,
	       BLKIF_OP_WRITE_BARRIER, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_DISCARD,
	       BLKIF_OP_INDIRECT, BLKIF_MAX_SEGMENTS_PER_REQUEST,
	       BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_RSP_ERROR, BLKIF_RSP_EOPNOTSUPP);
	printf("vdisk %d %d %d\n", VDISK_CDROM, VDISK_REMOVABLE, VDISK_READONLY);
	return 0;
}
