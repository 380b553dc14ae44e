/*
 * Prints offsetof/sizeof of the io/netif.h structures package netif
 * mirrors, as "struct.field offset size" lines, and the ring sizes.
 * Built by layout_test.go with gcc against /usr/include/xen.
 */
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/io/netif.h>

#define F(s, f) printf("%s.%s %zu %zu\n", #s, #f, offsetof(struct s, f), sizeof(((struct s *)0)->f))
#define S(s) printf("%s %zu %zu\n", #s, (size_t)0, sizeof(struct s))

int main(void)
{
	S(netif_tx_request);
	F(netif_tx_request, gref);
	F(netif_tx_request, offset);
	F(netif_tx_request, flags);
	F(netif_tx_request, id);
	F(netif_tx_request, size);
	S(netif_tx_response);
	F(netif_tx_response, id);
	F(netif_tx_response, status);
	S(netif_rx_request);
	F(netif_rx_request, id);
	F(netif_rx_request, gref);
	S(netif_rx_response);
	F(netif_rx_response, id);
	F(netif_rx_response, offset);
	F(netif_rx_response, flags);
	F(netif_rx_response, status);
	S(netif_extra_info);
	F(netif_extra_info, type);
	F(netif_extra_info, flags);
	F(netif_extra_info, u.gso.size);
	F(netif_extra_info, u.gso.type);
	F(netif_extra_info, u.gso.features);
	F(netif_extra_info, u.mcast.addr);
	printf("tx_slot 0 %zu\n", sizeof(union netif_tx_sring_entry));
	printf("rx_slot 0 %zu\n", sizeof(union netif_rx_sring_entry));
	printf("tx_ring_size %zu 0\n", (size_t)__CONST_RING_SIZE(netif_tx, 4096));
	printf("rx_ring_size %zu 0\n", (size_t)__CONST_RING_SIZE(netif_rx, 4096));
	printf("NETTXF_more_data %d 0\n", NETTXF_more_data);
	printf("NETRXF_extra_info %d 0\n", NETRXF_extra_info);
	printf("NETRXF_gso_prefix %d 0\n", NETRXF_gso_prefix);
	printf("XEN_NETIF_EXTRA_TYPE_MAX %d 0\n", XEN_NETIF_EXTRA_TYPE_MAX);
	printf("NETIF_RSP_NULL %d 0\n", NETIF_RSP_NULL);
	printf("NETIF_RSP_DROPPED %d 0\n", NETIF_RSP_DROPPED);
	return 0;
}
