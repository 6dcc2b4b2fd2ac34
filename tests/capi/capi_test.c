/* CApiTest: the C API (engine/converge.h) from C11. Exercises every call,
 * its error paths, a whole migration of the micro-VM with two emulated
 * devices through a file, cancel, and a failed switchover. Exit 0 on
 * success, 77 (skipped) without /dev/kvm, 1 on the first failure. */

#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/converge.h"
#include "tests/capi/capi_rig.h"

static int failures = 0;

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n",      \
              __FILE__, __LINE__, #cond, converge_last_error());        \
      ++failures;                                                       \
      return;                                                           \
    }                                                                   \
  } while (0)

#define CHECK_OK(call) CHECK((call) == CONVERGE_OK)

static int refuse_pause(void* context) {
  (void)context;
  return -5;
}

static void test_errors(void) {
  converge_engine* e = NULL;
  converge_transport* t = NULL;
  converge_source* s = NULL;
  converge_kvm_slot slot = {0, 0, 0, 4096, NULL};

  CHECK(converge_engine_create(NULL, NULL, NULL, &e) ==
        CONVERGE_INVALID_ARGUMENT);
  CHECK(strstr(converge_last_error(), "transport") != NULL);
  CHECK(converge_transport_open_file("/nonexistent/dir/stream", &t) !=
        CONVERGE_OK);
  CHECK(strlen(converge_last_error()) > 0);
  CHECK(converge_transport_create_file(NULL, &t) ==
        CONVERGE_INVALID_ARGUMENT);
  CHECK(converge_source_kvm_dirty_log(NULL, 3, &slot, 0, 1, &s) ==
        CONVERGE_INVALID_ARGUMENT);
  CHECK(converge_source_kvm_dirty_log(NULL, -1, &slot, 1, 1, &s) ==
        CONVERGE_INVALID_ARGUMENT);
  CHECK(strstr(converge_last_error(), "vm_fd") != NULL);
  CHECK(converge_engine_start(NULL) == CONVERGE_INVALID_ARGUMENT);
  CHECK(strcmp(converge_status_name(CONVERGE_CORRUPT), "CORRUPT") == 0);
  CHECK(strcmp(converge_status_name((converge_status)99), "INVALID") == 0);
  CHECK(converge_transport_close(NULL) == CONVERGE_OK);
  converge_engine_destroy(NULL);
  converge_source_destroy(NULL);
  converge_destination_destroy(NULL);
  converge_kernel_destroy(NULL);
  converge_kernel_destroy(converge_kernel_default());

  /* Bad options are named. */
  char path[] = "/tmp/converge-capi-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  CHECK_OK(converge_transport_create_file(path, &t));
  converge_engine_options o;
  converge_engine_options_init(&o);
  CHECK(o.codec == CONVERGE_CODEC_LZ4 && o.device_precopy == 1);
  o.policy.downtime_limit_ms = -1;
  CHECK(converge_engine_create(NULL, t, &o, &e) == CONVERGE_INVALID_ARGUMENT);
  CHECK(strstr(converge_last_error(), "downtime_limit_ms") != NULL);
  converge_engine_options_init(&o);
  o.codec = (converge_codec)9;
  CHECK(converge_engine_create(NULL, t, &o, &e) == CONVERGE_INVALID_ARGUMENT);
  CHECK_OK(converge_engine_create(NULL, t, NULL, &e));
  CHECK(converge_engine_start(e) == CONVERGE_INVALID_ARGUMENT); /* no RAM */
  converge_engine_destroy(e);
  CHECK_OK(converge_transport_close(t));
  unlink(path);
}

/* Builds an engine over the rig writing to path. */
static converge_engine* new_engine(capi_rig* rig, converge_transport* t,
                                   converge_source** source) {
  converge_engine_options o;
  converge_engine_options_init(&o);
  o.policy.downtime_limit_ms = 50;
  o.policy.max_iterations = 6;
  o.policy.force_switchover_on_limit = 1;
  o.rearm_chunk_bytes = 4 << 20;
  converge_engine* e = NULL;
  if (converge_engine_create(capi_rig_kernel(rig), t, &o, &e) != CONVERGE_OK)
    return NULL;
  converge_kvm_slot slots[8];
  size_t n = capi_rig_slots(rig, slots, 8);
  uint32_t id = 99;
  if (converge_source_kvm_dirty_log(NULL, capi_rig_vm_fd(rig), slots, n, 1,
                                    source) != CONVERGE_OK ||
      converge_engine_add_region(e, 0, capi_rig_ram_bytes(rig),
                                 capi_rig_ram(rig)) != CONVERGE_OK ||
      converge_engine_add_source(e, *source, 0) != CONVERGE_OK ||
      converge_engine_add_device(e, "nic", capi_rig_src_device_fd(rig, 0),
                                 &id) != CONVERGE_OK ||
      id != 0 ||
      converge_engine_add_device(e, "gpu", capi_rig_src_device_fd(rig, 1),
                                 NULL) != CONVERGE_OK) {
    converge_engine_destroy(e);
    return NULL;
  }
  return e;
}

static void test_migration(capi_rig* rig) {
  char path[] = "/tmp/converge-capi-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  converge_transport* out = NULL;
  CHECK_OK(converge_transport_create_file(path, &out));
  converge_source* source = NULL;
  converge_engine* e = new_engine(rig, out, &source);
  CHECK(e != NULL);
  CHECK(converge_engine_add_device(e, "nic", capi_rig_src_device_fd(rig, 0),
                                   NULL) == CONVERGE_INVALID_ARGUMENT);
  CHECK(strstr(converge_last_error(), "nic") != NULL);
  CHECK(converge_engine_sync(e, NULL) == CONVERGE_FAILED_PRECONDITION);
  CHECK(converge_engine_add_region(e, 0, 4096, NULL) ==
        CONVERGE_INVALID_ARGUMENT);
  CHECK_OK(converge_engine_start(e));
  CHECK(converge_engine_start(e) == CONVERGE_FAILED_PRECONDITION);

  converge_decision d;
  converge_estimate est;
  int iterations = 0;
  for (;;) {
    converge_sync_stats ss;
    CHECK_OK(converge_engine_sync(e, &ss));
    CHECK(ss.source_failed == 0);
    CHECK_OK(converge_engine_estimate(e, &est));
    CHECK(est.syncs == (uint64_t)iterations + 1);
    CHECK_OK(converge_engine_should_switchover(e, &d));
    CHECK(strlen(d.reason) > 0);
    if (d.action != CONVERGE_ACTION_CONTINUE) break;
    converge_iteration_stats is;
    CHECK_OK(converge_engine_iterate(e, &is));
    CHECK(is.iteration == (uint64_t)++iterations);
    if (iterations == 1) CHECK(is.ram_pages_sent > 0);
  }
  CHECK(d.action == CONVERGE_ACTION_SWITCHOVER ||
        d.action == CONVERGE_ACTION_FORCE_SWITCHOVER);
  CHECK(converge_engine_estimate(e, NULL) == CONVERGE_INVALID_ARGUMENT);
  CHECK(converge_engine_switchover(e, NULL, NULL, rig, NULL) ==
        CONVERGE_INVALID_ARGUMENT);
  converge_switchover_stats sw;
  CHECK_OK(converge_engine_switchover(e, capi_rig_pause, capi_rig_resume, rig,
                                      &sw));
  CHECK(sw.last_byte_ns >= sw.paused_ns && sw.device_bytes > 0);
  CHECK(sw.iterations == (uint64_t)iterations);
  CHECK(converge_engine_iterate(e, NULL) == CONVERGE_FAILED_PRECONDITION);
  CHECK(converge_transport_bytes_written(out) == sw.total_stream_bytes);
  CHECK_OK(converge_transport_close(out));

  converge_transport* in = NULL;
  CHECK_OK(converge_transport_open_file(path, &in));
  converge_destination* dst = NULL;
  CHECK(converge_destination_create(NULL, NULL, &dst) ==
        CONVERGE_INVALID_ARGUMENT);
  CHECK_OK(converge_destination_create(capi_rig_kernel(rig), in, &dst));
  CHECK_OK(converge_destination_add_region(dst, 0, capi_rig_ram_bytes(rig),
                                           capi_rig_dst_ram(rig)));
  uint32_t id = 9;
  CHECK_OK(converge_destination_add_device(dst, "nic",
                                           capi_rig_dst_device_fd(rig, 0),
                                           &id));
  CHECK(id == 0);
  CHECK_OK(converge_destination_add_device(dst, "gpu",
                                           capi_rig_dst_device_fd(rig, 1),
                                           NULL));
  CHECK_OK(converge_destination_prepare(dst));
  CHECK(converge_destination_add_region(dst, 0, 4096, capi_rig_dst_ram(rig)) ==
        CONVERGE_FAILED_PRECONDITION);
  converge_destination_result r;
  CHECK_OK(converge_destination_run(dst, &r));
  CHECK(r.ready_ns >= r.stream_end_ns && r.ram_pages > 0);
  CHECK_OK(converge_engine_record_destination_apply(
      e, r.ready_ns > sw.last_byte_ns ? r.ready_ns - sw.last_byte_ns : 0));
  CHECK(capi_rig_verify(rig));
  CHECK(converge_destination_run(dst, NULL) == CONVERGE_FAILED_PRECONDITION);
  converge_destination_destroy(dst);
  CHECK_OK(converge_transport_close(in));
  converge_engine_destroy(e);
  converge_source_destroy(source);
  capi_rig_resume(rig);
  unlink(path);
}

static void test_cancel(capi_rig* rig) {
  char path[] = "/tmp/converge-capi-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  converge_transport* out = NULL;
  CHECK_OK(converge_transport_create_file(path, &out));
  converge_source* source = NULL;
  converge_engine* e = new_engine(rig, out, &source);
  CHECK(e != NULL);
  CHECK_OK(converge_engine_start(e));
  CHECK_OK(converge_engine_sync(e, NULL));
  CHECK_OK(converge_engine_iterate(e, NULL));
  CHECK_OK(converge_engine_cancel(e));
  CHECK_OK(converge_engine_cancel(e));
  CHECK(capi_rig_src_device_running(rig, 0) && capi_rig_src_device_running(rig, 1));
  CHECK(converge_engine_sync(e, NULL) == CONVERGE_FAILED_PRECONDITION);
  converge_engine_destroy(e);
  converge_source_destroy(source);

  /* A pause callback that fails rolls the switchover back. */
  CHECK_OK(converge_transport_close(out));
  CHECK_OK(converge_transport_create_file(path, &out));
  e = new_engine(rig, out, &source);
  CHECK(e != NULL);
  CHECK_OK(converge_engine_start(e));
  CHECK_OK(converge_engine_sync(e, NULL));
  CHECK(converge_engine_switchover(e, refuse_pause, NULL, NULL, NULL) ==
        CONVERGE_IO_ERROR);
  CHECK(strstr(converge_last_error(), "pause") != NULL);
  CHECK(capi_rig_src_device_running(rig, 0) && capi_rig_src_device_running(rig, 1));
  converge_engine_destroy(e);
  converge_source_destroy(source);
  CHECK_OK(converge_transport_close(out));
  unlink(path);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  test_errors();
  if (!capi_kvm_available()) {
    fprintf(stderr, "CApiTest: /dev/kvm cannot be opened; skipped\n");
    return failures ? 1 : 77;
  }
  capi_rig* rig = capi_rig_create(16 << 20);
  if (rig == NULL) return 1;
  test_cancel(rig);
  capi_rig_new_dst(rig);
  test_migration(rig);
  capi_rig_destroy(rig);
  if (failures == 0) printf("CApiTest: all checks passed\n");
  return failures ? 1 : 0;
}
