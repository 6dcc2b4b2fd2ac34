/* converge C API: pre-copy live migration of a VM with VFIO devices, for
 * VMMs written in C (or any language with a C FFI).
 *
 * Handles are opaque and owned by the caller: every *_create / *_open has a
 * matching *_destroy / *_close. No C++ type and no exception crosses this
 * interface. Every call that can fail returns a converge_status; on failure
 * converge_last_error() has a message naming what was wrong (per thread,
 * valid until the next failing call on that thread).
 *
 * The engine is PrecopyEngine (engine/precopy_engine.h) and the destination
 * is Destination (engine/destination.h); their comments are the full
 * contract. One thread drives an engine or a destination at a time.
 *
 * Units: bytes, nanoseconds (_ns), milliseconds (_ms); _bps is BYTES per
 * second. Time is CLOCK_MONOTONIC.
 *
 * Signals: writing to a destination device's pipe after it closed raises
 * SIGPIPE; converge_destination_run blocks it on its thread while it runs
 * (see engine/destination.h). */

#ifndef CONVERGE_ENGINE_CONVERGE_H_
#define CONVERGE_ENGINE_CONVERGE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Errors -------------------------------------------------------- */

/* The values of converge::StatusCode. */
typedef enum converge_status {
  CONVERGE_OK = 0,
  CONVERGE_INVALID_ARGUMENT = 1,
  CONVERGE_OUT_OF_RANGE = 2,
  CONVERGE_NOT_SUPPORTED = 3,
  CONVERGE_FAILED_PRECONDITION = 4,
  CONVERGE_RESOURCE_EXHAUSTED = 5,
  CONVERGE_UNAVAILABLE = 6,
  CONVERGE_INTERRUPTED = 7,
  CONVERGE_IO_ERROR = 8,
  CONVERGE_CORRUPT = 9,
  CONVERGE_CANCELLED = 10,
  CONVERGE_INTERNAL = 11,
  /* Not a status: makes the type int-sized and any int a valid value, so
   * C and C++ agree on it (converge_status_name answers "INVALID"). */
  CONVERGE_STATUS_INT_ = 0x7fffffff,
} converge_status;

/* The message of the last failed call on this thread ("" if none). */
const char* converge_last_error(void);
/* "INVALID_ARGUMENT", ... */
const char* converge_status_name(converge_status status);

/* ---- Handles ------------------------------------------------------- */

typedef struct converge_kernel converge_kernel;
typedef struct converge_transport converge_transport;
typedef struct converge_source converge_source;
typedef struct converge_engine converge_engine;
typedef struct converge_destination converge_destination;

/* The real kernel (never destroyed). Engines and destinations given NULL
 * use it. Tests obtain an emulated one from C++ (engine/converge_cpp.h). */
converge_kernel* converge_kernel_default(void);
/* Frees a kernel handle from engine/converge_cpp.h (not the kernel behind
 * it); the default handle and NULL are ignored. */
void converge_kernel_destroy(converge_kernel* kernel);

/* ---- Transports ---------------------------------------------------- */

/* Takes ownership of a connected stream socket. */
converge_status converge_transport_from_socket(int fd,
                                               converge_transport** out);
/* A file written from its start (created or truncated). */
converge_status converge_transport_create_file(const char* path,
                                               converge_transport** out);
/* A file read from its start. */
converge_status converge_transport_open_file(const char* path,
                                             converge_transport** out);
/* Flushes, closes and frees. NULL is allowed. The status of the close. */
converge_status converge_transport_close(converge_transport* transport);
uint64_t converge_transport_bytes_written(const converge_transport* t);

/* ---- Dirty sources ------------------------------------------------- */

/* One KVM memslot, as given to KVM_SET_USER_MEMORY_REGION. */
typedef struct converge_kvm_slot {
  uint32_t slot;
  uint32_t flags; /* KVM_MEM_* as set (KVM_MEM_LOG_DIRTY_PAGES is managed) */
  uint64_t gpa;
  uint64_t bytes;
  void* host;
} converge_kvm_slot;

/* KVM dirty log (KVM_GET_DIRTY_LOG, with KVM_CLEAR_DIRTY_LOG re-arming when
 * manual_protect != 0) over the slots of vm_fd (borrowed). */
converge_status converge_source_kvm_dirty_log(converge_kernel* kernel,
                                              int vm_fd,
                                              const converge_kvm_slot* slots,
                                              size_t num_slots,
                                              int manual_protect,
                                              converge_source** out);
/* Frees a source. REQUIRES: no engine uses it any more. NULL is allowed. */
void converge_source_destroy(converge_source* source);

/* ---- Policy and options -------------------------------------------- */

typedef enum converge_codec {
  CONVERGE_CODEC_NONE = 0,
  CONVERGE_CODEC_LZ4 = 1,
  CONVERGE_CODEC_ZSTD = 2,
  CONVERGE_CODEC_INT_ = 0x7fffffff, /* not a codec: int-sized, as above */
} converge_codec;

typedef struct converge_policy {
  double downtime_limit_ms;      /* default 300 */
  double bandwidth_cap_bps;      /* 0 = none */
  uint64_t max_iterations;       /* 0 = none */
  uint64_t max_total_time_ms;    /* 0 = none */
  int switchover_ack_required;   /* default 1 */
  uint64_t iteration_budget_bytes; /* 0 = none */
  uint64_t iteration_budget_ms;    /* 0 = none */
  int force_switchover_on_limit; /* 0: abort when a limit runs out */
  int abort_on_stall;            /* 0: keep iterating when stalled */
} converge_policy;

typedef struct converge_engine_options {
  converge_policy policy;
  converge_codec codec;     /* default lz4 */
  int zstd_level;           /* 1..19, zstd only */
  uint64_t rearm_chunk_bytes; /* default 1 GiB; 0 = all RAM at once */
  int device_precopy;       /* default 1: devices to PRE_COPY at start */
} converge_engine_options;

/* Fills the defaults (those of EngineOptions). */
void converge_engine_options_init(converge_engine_options* options);

/* ---- Per-iteration records ----------------------------------------- */

typedef struct converge_sync_stats {
  uint64_t sync_ns;
  uint64_t dirtied_pages;
  uint64_t ram_pending_pages;
  uint64_t wws_pages;
  uint64_t device_pending_bytes;
  int source_failed; /* a source failed; its pages are resent */
} converge_sync_stats;

typedef enum converge_verdict {
  CONVERGE_VERDICT_MEASURING = 0,
  CONVERGE_VERDICT_CONVERGING = 1,
  CONVERGE_VERDICT_READY = 2,
  CONVERGE_VERDICT_STALLED = 3,
  CONVERGE_VERDICT_NEVER_CONVERGES = 4,
} converge_verdict;

typedef struct converge_estimate {
  converge_verdict verdict;
  uint64_t syncs;
  uint64_t ram_pending_bytes;
  uint64_t device_pending_bytes;
  uint64_t pending_bytes;
  int bandwidth_measured;
  double bandwidth_bps;
  double dirty_rate_bps;
  double fixed_costs_ms;
  double predicted_downtime_ms;
  double qemu_expected_downtime_ms;
  double lambda;
  uint64_t wws_floor_bytes;
  int has_time_to_go; /* converging: the two fields below are set */
  uint64_t iterations_to_go;
  double time_to_go_ms;
  double smallest_reachable_limit_ms; /* stalled */
  int has_throttle;
  double throttle_percent;
  char cause[128]; /* "" or the stall cause and what it names */
} converge_estimate;

typedef struct converge_iteration_stats {
  uint64_t iteration;
  uint64_t duration_ns;
  uint64_t ram_pages_sent;
  uint64_t ram_zero_pages;
  uint64_t ram_wire_bytes;
  uint64_t ram_pending_pages;
  uint64_t device_bytes;
  uint64_t stream_bytes;
  int budget_exhausted;
  double predicted_downtime_ms;
} converge_iteration_stats;

typedef enum converge_action {
  CONVERGE_ACTION_CONTINUE = 0,
  CONVERGE_ACTION_SWITCHOVER = 1,
  CONVERGE_ACTION_FORCE_SWITCHOVER = 2,
  CONVERGE_ACTION_ABORT = 3,
} converge_action;

typedef struct converge_decision {
  converge_action action;
  char reason[256]; /* truncated to fit, always NUL-terminated */
} converge_decision;

typedef struct converge_switchover_stats {
  double predicted_downtime_ms;
  double qemu_expected_downtime_ms;
  uint64_t paused_ns;    /* CLOCK_MONOTONIC before the pause callback */
  uint64_t last_byte_ns; /* end-of-stream handed to the transport */
  uint64_t source_downtime_ns;
  uint64_t final_sync_ns;
  uint64_t device_stop_ns;
  uint64_t device_drain_ns;
  uint64_t ram_pages;
  uint64_t device_bytes;
  uint64_t total_stream_bytes;
  uint64_t iterations;
} converge_switchover_stats;

/* ---- Engine (source side) ------------------------------------------ */

/* kernel may be NULL (the real kernel). The transport is borrowed and must
 * outlive the engine. options may be NULL (defaults). */
converge_status converge_engine_create(converge_kernel* kernel,
                                       converge_transport* transport,
                                       const converge_engine_options* options,
                                       converge_engine** out);
/* Cancels a migration in progress and frees. NULL is allowed. */
void converge_engine_destroy(converge_engine* engine);

/* Guest RAM [gpa, gpa + bytes), mapped at host in this process. */
converge_status converge_engine_add_region(converge_engine* engine,
                                           uint64_t gpa, uint64_t bytes,
                                           void* host);
/* Borrowed; dma != 0 for device DMA sources (not slowed by throttling). */
converge_status converge_engine_add_source(converge_engine* engine,
                                           converge_source* source, int dma);
/* A VFIO device fd (borrowed, device in RUNNING). id_out may be NULL. */
converge_status converge_engine_add_device(converge_engine* engine,
                                           const char* name, int device_fd,
                                           uint32_t* id_out);
converge_status converge_engine_start(converge_engine* engine);
/* out may be NULL. */
converge_status converge_engine_sync(converge_engine* engine,
                                     converge_sync_stats* out);
converge_status converge_engine_estimate(converge_engine* engine,
                                         converge_estimate* out);
/* out may be NULL. */
converge_status converge_engine_iterate(converge_engine* engine,
                                        converge_iteration_stats* out);
converge_status converge_engine_should_switchover(converge_engine* engine,
                                                  converge_decision* out);

/* Stops the vCPUs; returns 0 when they are stopped. */
typedef int (*converge_pause_fn)(void* context);
/* Resumes them after a failed switchover. */
typedef void (*converge_resume_fn)(void* context);
/* pause is required; resume may be NULL; out may be NULL. */
converge_status converge_engine_switchover(converge_engine* engine,
                                           converge_pause_fn pause,
                                           converge_resume_fn resume,
                                           void* context,
                                           converge_switchover_stats* out);
/* The destination's ready time minus last_byte_ns, as a fixed cost. */
converge_status converge_engine_record_destination_apply(
    converge_engine* engine, uint64_t apply_ns);
converge_status converge_engine_cancel(converge_engine* engine);

/* ---- Destination ---------------------------------------------------- */

typedef struct converge_destination_result {
  uint64_t ram_pages;
  uint64_t records;
  uint64_t stream_bytes;
  uint64_t stream_end_ns;
  uint64_t ready_ns; /* CLOCK_MONOTONIC: every device validated */
} converge_destination_result;

converge_status converge_destination_create(converge_kernel* kernel,
                                            converge_transport* transport,
                                            converge_destination** out);
void converge_destination_destroy(converge_destination* destination);
converge_status converge_destination_add_region(
    converge_destination* destination, uint64_t gpa, uint64_t bytes,
    void* host);
converge_status converge_destination_add_device(
    converge_destination* destination, const char* name, int device_fd,
    uint32_t* id_out);
converge_status converge_destination_prepare(converge_destination* d);
/* out may be NULL. */
converge_status converge_destination_run(converge_destination* destination,
                                         converge_destination_result* out);

#ifdef __cplusplus
}
#endif

#endif /* CONVERGE_ENGINE_CONVERGE_H_ */
