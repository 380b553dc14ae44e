/*
 * Prints offsetof/sizeof of the Xen public structures package xen mirrors,
 * as "struct.field offset size" lines. Built by abi_test.go with
 *   gcc -D__XEN_INTERFACE_VERSION__=0x00040e00 against /usr/include/xen.
 */
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/grant_table.h>
#include <xen/event_channel.h>
#include <xen/io/xs_wire.h>

#define F(s, f) printf("%s.%s %zu %zu\n", #s, #f, offsetof(struct s, f), sizeof(((struct s *)0)->f))
#define S(s) printf("%s %zu %zu\n", #s, (size_t)0, sizeof(struct s))

int main(void)
{
	S(start_info);
	F(start_info, magic);
	F(start_info, nr_pages);
	F(start_info, shared_info);
	F(start_info, flags);
	F(start_info, store_mfn);
	F(start_info, store_evtchn);
	F(start_info, console.domU.mfn);
	F(start_info, console.domU.evtchn);
	F(start_info, pt_base);
	F(start_info, nr_pt_frames);
	F(start_info, mfn_list);
	F(start_info, mod_start);
	F(start_info, mod_len);
	F(start_info, cmd_line);
	F(start_info, first_p2m_pfn);
	F(start_info, nr_p2m_frames);

	S(shared_info);
	F(shared_info, vcpu_info);
	F(shared_info, evtchn_pending);
	F(shared_info, evtchn_mask);
	F(shared_info, wc_version);
	F(shared_info, wc_sec);
	F(shared_info, wc_nsec);
	F(shared_info, wc_sec_hi);
	F(shared_info, arch.max_pfn);
	F(shared_info, arch.pfn_to_mfn_frame_list_list);
	F(shared_info, arch.nmi_reason);
	F(shared_info, arch.p2m_cr3);
	F(shared_info, arch.p2m_vaddr);
	F(shared_info, arch.p2m_generation);

	S(vcpu_info);
	F(vcpu_info, evtchn_upcall_pending);
	F(vcpu_info, evtchn_upcall_mask);
	F(vcpu_info, evtchn_pending_sel);
	F(vcpu_info, arch.cr2);
	F(vcpu_info, time);
	F(vcpu_time_info, version);
	F(vcpu_time_info, tsc_timestamp);
	F(vcpu_time_info, system_time);
	F(vcpu_time_info, tsc_to_system_mul);
	F(vcpu_time_info, tsc_shift);
	F(vcpu_time_info, flags);

	S(grant_entry_v1);
	F(grant_entry_v1, flags);
	F(grant_entry_v1, domid);
	F(grant_entry_v1, frame);

	F(xenstore_domain_interface, req);
	F(xenstore_domain_interface, rsp);
	F(xenstore_domain_interface, req_cons);
	F(xenstore_domain_interface, req_prod);
	F(xenstore_domain_interface, rsp_cons);
	F(xenstore_domain_interface, rsp_prod);
	F(xenstore_domain_interface, server_features);
	F(xenstore_domain_interface, connection);
	F(xenstore_domain_interface, error);
	S(xsd_sockmsg);

	printf("const.XENSTORE_PAYLOAD_MAX %d 0\n", XENSTORE_PAYLOAD_MAX);
	printf("const.GNTTAB_NR_RESERVED_ENTRIES %d 0\n", GNTTAB_NR_RESERVED_ENTRIES);
	printf("const.MAX_GUEST_CMDLINE %d 0\n", MAX_GUEST_CMDLINE);
	printf("const.XEN_LEGACY_MAX_VCPUS %d 0\n", XEN_LEGACY_MAX_VCPUS);
	printf("const.GTF_readonly %u 0\n", GTF_readonly);
	printf("const.GTF_reading %u 0\n", GTF_reading);
	printf("const.GTF_writing %u 0\n", GTF_writing);
	printf("const.GTF_sub_page %u 0\n", GTF_sub_page);
	printf("const.SIF_MOD_START_PFN %d 0\n", SIF_MOD_START_PFN);
	printf("const.SIF_VIRT_P2M_4TOOLS %d 0\n", SIF_VIRT_P2M_4TOOLS);
	printf("const.__HYPERVISOR_sched_op %d 0\n", __HYPERVISOR_sched_op);
	printf("const.__HYPERVISOR_event_channel_op %d 0\n", __HYPERVISOR_event_channel_op);
	printf("const.__HYPERVISOR_grant_table_op %d 0\n", __HYPERVISOR_grant_table_op);
	printf("const.EVTCHNOP_alloc_unbound %d 0\n", EVTCHNOP_alloc_unbound);
	printf("const.EVTCHNOP_unmask %d 0\n", EVTCHNOP_unmask);
	printf("const.GNTTABOP_setup_table %d 0\n", GNTTABOP_setup_table);
	printf("const.GNTTABOP_query_size %d 0\n", GNTTABOP_query_size);
	printf("const.DOMID_SELF %d 0\n", DOMID_SELF);
	return 0;
}
