/*
 * Prints the shared ring geometry of the Xen headers as "name value"
 * lines: header field offsets of struct blkif_sring and __CONST_RING_SIZE
 * for the blkif and netif rings at every page order. Built by
 * sring_test.go against /usr/include/xen.
 */
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/io/blkif.h>
#include <xen/io/netif.h>

#define SIZES(n) do { \
	int k; \
	for (k = 0; k <= 4; k++) \
		printf("%s.size.%d %lu\n", #n, k, (unsigned long)__CONST_RING_SIZE(n, 4096 << k)); \
	printf("%s.slot %zu\n", #n, sizeof(union n##_sring_entry)); \
} while (0)

int main(void)
{
	printf("req_prod %zu\n", offsetof(struct blkif_sring, req_prod));
	printf("req_event %zu\n", offsetof(struct blkif_sring, req_event));
	printf("rsp_prod %zu\n", offsetof(struct blkif_sring, rsp_prod));
	printf("rsp_event %zu\n", offsetof(struct blkif_sring, rsp_event));
	printf("ring %zu\n", offsetof(struct blkif_sring, ring));
	SIZES(blkif);
	SIZES(netif_tx);
	SIZES(netif_rx);
	return 0;
}
