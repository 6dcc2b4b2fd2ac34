// The micro-VM's guest: flat 32-bit protected-mode code, no stack, no
// interrupts. The host copies the bytes between converge_guest_code_start
// and converge_guest_code_end to CONVERGE_GUEST_CODE_GPA and starts the vCPU
// there (vm/guest_abi.h has the layout and the mailbox protocol).
//
// The code is position independent except for the absolute guest-physical
// addresses of the mailbox and the page list, so it assembles into an
// ordinary 64-bit object with no relocations.
//
// Registers while a workload runs:
//   ebp  mailbox address (constant)
//   edi  the CMD_SEQ being executed; a change stops the workload
//   esi  sequential cursor or xorshift32 state
//   eax, ebx, ecx, edx  scratch

#include "vm/guest_abi.h"

        .section .rodata.converge_guest, "a"
        .globl converge_guest_code_start
        .globl converge_guest_code_end
        .hidden converge_guest_code_start
        .hidden converge_guest_code_end
        .code32

// Writes page eax: the low 32 bits of the pages-written counter at offset 0
// and the command sequence at offset 4, so every write changes the page.
// Clobbers eax, edx.
.macro WRITE_PAGE
        shl $12, %eax
        mov CONVERGE_MB_PAGES_WRITTEN_LO(%ebp), %edx
        mov %edx, (%eax)
        mov %edi, 4(%eax)
        addl $1, CONVERGE_MB_PAGES_WRITTEN_LO(%ebp)
        adcl $0, CONVERGE_MB_PAGES_WRITTEN_HI(%ebp)
.endm

// Rate knob: waits until TICKS_PER_PAGE TSC ticks have passed since the end
// of the previous wait. The page write happens inside that interval, so the
// period is exact while a write costs less than TICKS_PER_PAGE; the TSC is
// compared in 32 bits, which limits a period to 2^32 ticks (over a second
// at 4 GHz). Leaves for wait_command when a new command arrives.
// Clobbers eax, ebx, ecx, edx.
.macro RATE_WAIT
        mov CONVERGE_MB_TICKS_PER_PAGE(%ebp), %ecx
        test %ecx, %ecx
        jz 3f
1:      rdtsc
        mov %eax, %ebx
        sub CONVERGE_MB_LAST_TSC(%ebp), %eax
        cmp %ecx, %eax
        jae 2f
        pause
        cmp CONVERGE_MB_CMD_SEQ(%ebp), %edi
        jne wait_command
        jmp 1b
2:      mov %ebx, CONVERGE_MB_LAST_TSC(%ebp)
3:
.endm

// One step of xorshift32 on esi. Clobbers eax.
.macro XORSHIFT
        mov %esi, %eax
        shl $13, %eax
        xor %eax, %esi
        mov %esi, %eax
        shr $17, %eax
        xor %eax, %esi
        mov %esi, %eax
        shl $5, %eax
        xor %eax, %esi
.endm

// Jumps to wait_command when the host posted a new command.
.macro CHECK_COMMAND
        cmp CONVERGE_MB_CMD_SEQ(%ebp), %edi
        jne wait_command
.endm

converge_guest_code_start:
        mov $CONVERGE_GUEST_MAILBOX_GPA, %ebp
wait_command:
        mov CONVERGE_MB_CMD_SEQ(%ebp), %eax
        cmp CONVERGE_MB_ACK_SEQ(%ebp), %eax
        jne new_command
        hlt                     // the host blocks until the next command
        jmp wait_command

new_command:
        mov %eax, %edi
        mov CONVERGE_MB_SEED(%ebp), %esi
        rdtsc
        mov %eax, CONVERGE_MB_LAST_TSC(%ebp)
        mov %edi, CONVERGE_MB_ACK_SEQ(%ebp)
        mov CONVERGE_MB_MODE(%ebp), %eax
        cmp $CONVERGE_GUEST_MODE_SEQUENTIAL, %eax
        je sequential
        cmp $CONVERGE_GUEST_MODE_RANDOM, %eax
        je random
        cmp $CONVERGE_GUEST_MODE_HOT_COLD, %eax
        je hot_cold
        cmp $CONVERGE_GUEST_MODE_BURSTS, %eax
        je bursts
        cmp $CONVERGE_GUEST_MODE_PAGE_LIST, %eax
        je page_list
        cmp $CONVERGE_GUEST_MODE_SWEEP_ONCE, %eax
        je sweep_once
        jmp wait_command        // idle

sequential:
        xor %esi, %esi
seq_loop:
        CHECK_COMMAND
        mov %esi, %eax
        add CONVERGE_MB_REGION_FIRST(%ebp), %eax
        WRITE_PAGE
        RATE_WAIT
        inc %esi
        cmp CONVERGE_MB_REGION_PAGES(%ebp), %esi
        jb seq_loop
        xor %esi, %esi
        jmp seq_loop

random:
        CHECK_COMMAND
        XORSHIFT
        mov %esi, %eax
        xor %edx, %edx
        divl CONVERGE_MB_REGION_PAGES(%ebp)
        mov %edx, %eax
        add CONVERGE_MB_REGION_FIRST(%ebp), %eax
        WRITE_PAGE
        RATE_WAIT
        jmp random

hot_cold:
        CHECK_COMMAND
        XORSHIFT
        mov %esi, %eax
        xor %edx, %edx
        mov $100, %ecx
        div %ecx
        mov %edx, %ebx          // ebx = percentile of this write
        XORSHIFT
        mov %esi, %eax
        xor %edx, %edx
        cmp $90, %ebx
        jae hot_cold_cold
        divl CONVERGE_MB_HOT_PAGES(%ebp)
        mov %edx, %eax
        add CONVERGE_MB_REGION_FIRST(%ebp), %eax
        jmp hot_cold_write
hot_cold_cold:
        divl CONVERGE_MB_COLD_PAGES(%ebp)
        mov %edx, %eax
        add CONVERGE_MB_REGION_FIRST(%ebp), %eax
        add CONVERGE_MB_HOT_PAGES(%ebp), %eax
hot_cold_write:
        WRITE_PAGE
        RATE_WAIT
        jmp hot_cold

bursts:
        xor %esi, %esi
burst_start:
        mov CONVERGE_MB_BURST_PAGES(%ebp), %eax
        mov %eax, CONVERGE_MB_BURST_LEFT(%ebp)
burst_loop:
        CHECK_COMMAND
        mov %esi, %eax
        add CONVERGE_MB_REGION_FIRST(%ebp), %eax
        WRITE_PAGE
        RATE_WAIT
        inc %esi
        cmp CONVERGE_MB_REGION_PAGES(%ebp), %esi
        jb burst_next
        xor %esi, %esi
burst_next:
        decl CONVERGE_MB_BURST_LEFT(%ebp)
        jnz burst_loop
        rdtsc
        mov %eax, %ebx
burst_pause:
        CHECK_COMMAND
        pause
        rdtsc
        sub %ebx, %eax
        cmp CONVERGE_MB_BURST_PAUSE_TICKS(%ebp), %eax
        jb burst_pause
        jmp burst_start

page_list:
        xor %ecx, %ecx
page_list_loop:
        cmp CONVERGE_MB_LIST_COUNT(%ebp), %ecx
        jae one_shot_done
        mov CONVERGE_GUEST_LIST_GPA(,%ecx,4), %eax
        WRITE_PAGE
        inc %ecx
        jmp page_list_loop

sweep_once:
        xor %esi, %esi
sweep_once_loop:
        cmp CONVERGE_MB_REGION_PAGES(%ebp), %esi
        jae one_shot_done
        mov %esi, %eax
        add CONVERGE_MB_REGION_FIRST(%ebp), %eax
        WRITE_PAGE
        inc %esi
        jmp sweep_once_loop

one_shot_done:
        incl CONVERGE_MB_DONE_COUNT(%ebp)
        jmp wait_command
converge_guest_code_end:

        .code64
        .section .note.GNU-stack, "", @progbits
