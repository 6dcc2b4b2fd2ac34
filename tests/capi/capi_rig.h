/* A source VM (real KVM micro-VM, sequential workload) with two emulated
 * PRE_COPY devices and a destination with two more, for the C API test.
 * The C++ side lives in capi_rig.cc; this header is C. */

#ifndef CONVERGE_TESTS_CAPI_CAPI_RIG_H_
#define CONVERGE_TESTS_CAPI_CAPI_RIG_H_

#include <stddef.h>
#include <stdint.h>

#include "engine/converge.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct capi_rig capi_rig;

/* 1 when /dev/kvm opens read-write. */
int capi_kvm_available(void);
/* NULL on failure (the reason on stderr). */
capi_rig* capi_rig_create(uint64_t ram_bytes);
void capi_rig_destroy(capi_rig* rig);

/* The emulated kernel behind every device fd below. */
converge_kernel* capi_rig_kernel(capi_rig* rig);
int capi_rig_vm_fd(capi_rig* rig);
/* Fills up to max slots; returns how many the VM has. */
size_t capi_rig_slots(capi_rig* rig, converge_kvm_slot* out, size_t max);
void* capi_rig_ram(capi_rig* rig);
void* capi_rig_dst_ram(capi_rig* rig);
uint64_t capi_rig_ram_bytes(capi_rig* rig);
/* i in [0, 2). Destination devices are fresh after capi_rig_new_dst(). */
int capi_rig_src_device_fd(capi_rig* rig, int i);
int capi_rig_dst_device_fd(capi_rig* rig, int i);
void capi_rig_new_dst(capi_rig* rig);
/* converge_pause_fn / converge_resume_fn with the rig as context. */
int capi_rig_pause(void* rig);
void capi_rig_resume(void* rig);
/* Source device i's state is RUNNING (1) or not (0). */
int capi_rig_src_device_running(capi_rig* rig, int i);
/* 1 when destination RAM and devices equal the source's. */
int capi_rig_verify(capi_rig* rig);

#ifdef __cplusplus
}
#endif

#endif /* CONVERGE_TESTS_CAPI_CAPI_RIG_H_ */
