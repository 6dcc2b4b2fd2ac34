/* The contract between the micro-VM's guest code (vm/guest.S) and the host
 * (vm/micro_vm.cc): guest-physical layout and the mailbox page.
 *
 * This header holds only #defines so the assembler can include it.
 *
 * Guest-physical layout (4 KiB pages; the guest runs flat 32-bit protected
 * mode without paging, so every address it can touch is below 4 GiB):
 *   page 0         unused
 *   page 1         mailbox: commands from the host, progress from the guest
 *   pages 2..5     guest code (read-only by convention; never written)
 *   pages 8..15    the page list of CONVERGE_GUEST_MODE_PAGE_LIST (u32 page
 *                  numbers, written by the host only)
 *   pages 16..     workload memory
 * The guest's only own writes go to the mailbox page, so a dirty harvest is
 * exactly the workload pages it wrote plus page 1.
 */

#ifndef CONVERGE_VM_GUEST_ABI_H_
#define CONVERGE_VM_GUEST_ABI_H_

#define CONVERGE_GUEST_PAGE_BYTES 4096
#define CONVERGE_GUEST_MAILBOX_GPA 0x1000
#define CONVERGE_GUEST_CODE_GPA 0x2000
#define CONVERGE_GUEST_CODE_MAX_BYTES 0x4000
#define CONVERGE_GUEST_LIST_GPA 0x8000
#define CONVERGE_GUEST_LIST_MAX_PAGES 8192
#define CONVERGE_GUEST_FIRST_WORKLOAD_PAGE 16

/* Mailbox fields: byte offsets of little-endian u32 words. The host writes
 * the command fields, then CMD_SEQ; the guest copies CMD_SEQ to ACK_SEQ once
 * it runs the command. The guest re-reads the command fields on every page it
 * writes, and stops a workload as soon as CMD_SEQ changes. */
#define CONVERGE_MB_CMD_SEQ 0x00
#define CONVERGE_MB_ACK_SEQ 0x04
#define CONVERGE_MB_MODE 0x08
#define CONVERGE_MB_REGION_FIRST 0x0c    /* first page the workload writes */
#define CONVERGE_MB_REGION_PAGES 0x10    /* pages in the region (>= 1) */
#define CONVERGE_MB_TICKS_PER_PAGE 0x14  /* TSC ticks between writes, 0: none */
#define CONVERGE_MB_BURST_PAGES 0x18     /* pages per burst (>= 1) */
#define CONVERGE_MB_BURST_PAUSE_TICKS 0x1c
#define CONVERGE_MB_SEED 0x20            /* xorshift32 state, never 0 */
#define CONVERGE_MB_HOT_PAGES 0x24       /* hot/cold: the first HOT pages */
#define CONVERGE_MB_COLD_PAGES 0x28      /* hot/cold: the other pages (>= 1) */
#define CONVERGE_MB_LIST_COUNT 0x2c      /* page list: entries to write */
/* Guest-written progress. */
#define CONVERGE_MB_PAGES_WRITTEN_LO 0x40
#define CONVERGE_MB_PAGES_WRITTEN_HI 0x44
#define CONVERGE_MB_DONE_COUNT 0x48      /* one-shot commands completed */
/* Guest scratch. */
#define CONVERGE_MB_LAST_TSC 0x50
#define CONVERGE_MB_BURST_LEFT 0x54

/* Values of CONVERGE_MB_MODE. */
#define CONVERGE_GUEST_MODE_IDLE 0        /* hlt until the next command */
#define CONVERGE_GUEST_MODE_SEQUENTIAL 1  /* sweep the region, wrap around */
#define CONVERGE_GUEST_MODE_RANDOM 2      /* uniform over the region */
#define CONVERGE_GUEST_MODE_HOT_COLD 3    /* 90 % of writes to HOT pages */
#define CONVERGE_GUEST_MODE_BURSTS 4      /* BURST_PAGES sequential, pause */
#define CONVERGE_GUEST_MODE_PAGE_LIST 5   /* the list once, DONE_COUNT++ */
#define CONVERGE_GUEST_MODE_SWEEP_ONCE 6  /* the region once, DONE_COUNT++ */

#endif /* CONVERGE_VM_GUEST_ABI_H_ */
