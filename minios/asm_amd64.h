// Constants shared by entry_amd64.s and the Go code (xen_const.go checks
// that both agree).
#define KSTACK_SIZE 65536
#define KSTACK_GUARD 8192
#define FRAME_SIZE 176
#define HC_SET_SEGMENT_BASE 25
#define HC_IRET 23
#define VEC_SYSCALL 0x100
#define VEC_EVENT 0x101
#define VEC_FAILSAFE 0x102
