// EmulatedVfioDevice: a VFIO PCI device with migration v2 and device DMA
// logging, behind a device fd of an EmulatedKernel (uapi.md sections 1-2).
//
// What it implements, the way the kernel and its drivers do:
// - VFIO_DEVICE_FEATURE with the core's argsz and flag checks (argsz below
//   8 + payload, GET|SET without PROBE and unknown flag bits are EINVAL;
//   PROBE returns 0 when the operation is supported; features the device
//   lacks are ENOTTY): MIGRATION (1), MIG_DEVICE_STATE (2), DMA_LOGGING_
//   START/STOP/REPORT (6-8), MIG_DATA_SIZE (9), MIG_PRECOPY_INFOv2 (12,
//   SET opts in to VFIO_PRECOPY_INFO_REINIT).
// - The migration FSM of vfio_mig_get_next_state, one arc at a time. The
//   arcs on which the real kernel spins forever (STOP_COPY -> PRE_COPY /
//   PRE_COPY_P2P on a PRE_COPY device) fail with EDEADLK and count in
//   hang_attempts(), so a test can assert they never happen.
// - data_fds that are real pipes (vfio_data_session.h) registered in the
//   EmulatedKernel, so VFIO_MIG_GET_PRECOPY_INFO on them reaches the device.
// - VFIO_DEVICE_RESET: back to RUNNING from any state, sessions torn down.
//
// The device model: a saving session opens with precopy_initial_bytes of
// initial data. While in PRE_COPY or PRE_COPY_P2P the device keeps changing
// its state at dirty_bytes_per_sec (P2P quiescence stops peer DMA, not the
// device), accumulated up to max_dirty_bytes. As with mlx5, accumulated
// dirty data enters the stream only when PRECOPY_INFO is called (and at
// STOP_COPY); PRECOPY_INFO then reports, of what is published, the initial
// and dirty bytes not yet read out of the pipe. STOP_COPY appends the
// accumulated dirty data and stop_copy_bytes, then the trailer and EOF.
//
// Thread-safety: every method is safe to call from any thread; one mutex
// guards the device, and data sessions own their threads (joined when the
// session ends and by the destructor).

#ifndef CONVERGE_SIM_VFIO_DEVICE_H_
#define CONVERGE_SIM_VFIO_DEVICE_H_

#include <linux/vfio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "base/status.h"
#include "iommu/uapi_compat.h"
#include "sim/emulated_kernel.h"
#include "sim/vfio_data_session.h"
#include "sim/vfio_device_stream.h"
#include "sim/vfio_dma_log.h"
#include "sim/vfio_migration_fsm.h"

namespace converge::sim {

struct VfioDeviceOptions {
  // VFIO_MIGRATION_* reported by feature MIGRATION. STOP_COPY is mandatory
  // for migration; 0 makes a device without migration (ENOTTY).
  uint64_t migration_flags =
      VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY;
  // Features 6-8. A START costs O(ranges); a REPORT O(dirty pages).
  bool dma_logging = true;
  // Most ranges per START (the kernel's limit is 256: PAGE_SIZE / 16).
  uint32_t dma_log_max_ranges = 256;
  // Tracked page sizes the hardware supports (bit n = 2^n bytes); a START
  // page_size hint is rounded up to one of them and written back.
  uint64_t dma_log_page_sizes = (1ull << 12) | (1ull << 21) | (1ull << 30);
  // Feature 9.
  bool mig_data_size = true;
  // Feature 12 (Linux 7.1); SET opts in to REINIT reporting.
  bool precopy_info_v2 = false;

  // Initial precopy data published when a PRE_COPY session opens.
  uint64_t precopy_initial_bytes = 4ull << 20;
  // Rate the running device dirties its state in PRE_COPY(_P2P).
  uint64_t dirty_bytes_per_sec = 0;
  // Cap on accumulated, unpublished dirty data (the device state size).
  uint64_t max_dirty_bytes = 64ull << 20;
  // Device state written in STOP_COPY (besides unsent dirty data).
  uint64_t stop_copy_bytes = 16ull << 20;
  // Content of the stream; the seed makes it reproducible.
  ContentMix content;
  uint64_t seed = 1;

  // Pipe buffer per data_fd (best effort: unprivileged processes are held
  // to /proc/sys/fs/pipe-max-size). Larger means fewer device-thread
  // wake-ups per MiB.
  uint64_t pipe_bytes = 1ull << 20;
  // Saving hands the pipe references to the state's pages (vmsplice), so
  // the reader's read() is the only copy, as with a real device. false
  // copies every byte into the pipe on the device thread: host CPU a real
  // device does not spend.
  bool zero_copy_saving = true;
  // Monotonic clock for the dirty rate, in ns; empty = steady_clock. Tests
  // pass a fake clock instead of sleeping.
  std::function<uint64_t()> clock_ns;
};

class EmulatedVfioDevice final
    : public EmulatedObject,
      public std::enable_shared_from_this<EmulatedVfioDevice> {
 public:
  // The device starts in RUNNING. kernel must outlive it.
  static std::shared_ptr<EmulatedVfioDevice> Create(EmulatedKernel& kernel,
                                                    VfioDeviceOptions options);
  ~EmulatedVfioDevice() override;
  EmulatedVfioDevice(const EmulatedVfioDevice&) = delete;
  EmulatedVfioDevice& operator=(const EmulatedVfioDevice&) = delete;

  // VFIO_DEVICE_FEATURE, VFIO_DEVICE_RESET; anything else is ENOTTY.
  Result<int> Ioctl(unsigned long request, void* arg) override;

  // The device writes [iova, iova + length_bytes) of guest memory: marks
  // its DMA log (if started) and the IOMMU domains (EmulatedKernel::
  // NotifyDma). A device does not DMA unless RUNNING, RUNNING_P2P,
  // PRE_COPY or PRE_COPY_P2P: otherwise kFailedPrecondition.
  Status Dma(uint64_t iova, uint64_t length_bytes);
  // The device changes bytes of its state now (adds to the accumulated
  // dirty data, as dirty_bytes_per_sec does over time).
  void DirtyState(uint64_t bytes);
  // The device needs its initial data sent again (7.1 REINIT): publishes
  // initial_bytes of fresh initial data; with feature 12 opted in, the next
  // PRECOPY_INFO sets VFIO_PRECOPY_INFO_REINIT and reports everything
  // unread as initial with dirty_bytes 0, otherwise the fresh data shows
  // as dirty_bytes. No effect outside PRE_COPY(_P2P).
  void Reinitialize(uint64_t initial_bytes);

  // Failure injection. The next time the FSM takes arc from -> to it fails
  // with sys_errno; the device stays in `from` or, with enter_error, goes
  // to ERROR. One-shot.
  void InjectArcFailure(MigState from, MigState to, int sys_errno,
                        bool enter_error);
  // The next DMA_LOGGING_REPORT fails with sys_errno and loses the log;
  // later reports fail with EIO until STOP and START.
  void InjectDmaLogReportError(int sys_errno);

  // Observation, for tests and the harness.
  MigState state() const;
  // Every arc taken, in order.
  std::vector<std::pair<MigState, MigState>> arcs() const;
  // SETs refused because the real kernel would have hung on them.
  uint64_t hang_attempts() const;
  // Saving side, of the current or else the last saving session: payload
  // bytes written into the pipe, their XXH3-64, and whether the stream was
  // finished (trailer written, EOF).
  uint64_t stream_bytes() const;
  uint64_t stream_hash() const;
  bool stream_complete() const;
  // Resuming side, of the last completed RESUMING -> STOP: whether the
  // stream was intact, and its payload XXH3-64 (equal to the source's
  // stream_hash() when the state was restored).
  bool restored_ok() const;
  uint64_t restored_hash() const;
  uint64_t restored_bytes() const;
  // The device's DMA log (active, tracked page size, dirty pages).
  bool dma_logging_active() const;
  uint64_t dma_log_page_size() const;
  uint64_t dma_log_dirty_pages() const;

 private:
  struct PassKey {};

 public:
  // Use Create().
  EmulatedVfioDevice(PassKey, EmulatedKernel& kernel,
                     VfioDeviceOptions options);

  // VFIO_MIG_GET_PRECOPY_INFO on a data_fd of session session_id.
  Result<int> PrecopyInfo(uint64_t session_id, vfio_precopy_info* info);

 private:
  struct ArcFailure {
    MigState from, to;
    int sys_errno;
    bool enter_error;
  };

  Result<int> Feature(vfio_device_feature* feature);
  Result<int> MigDeviceState(uint32_t flags, void* data);
  Result<int> SetState(MigState target);  // REQUIRES: mu_ held
  // Takes one arc; returns the data_fd it opened or -1.
  Result<int> Step(MigState next);  // REQUIRES: mu_ held
  Result<int> OpenSaving(bool precopy);  // REQUIRES: mu_ held
  void EndSaving();  // REQUIRES: mu_ held
  void EndAllSessions();  // REQUIRES: mu_ held
  void Accrue();  // REQUIRES: mu_ held
  uint64_t NowNs() const;
  int InstallDataFd(int fd, uint64_t session_id);  // REQUIRES: mu_ held

  EmulatedKernel& kernel_;
  const VfioDeviceOptions options_;
  const std::shared_ptr<const DeviceStateContent> content_;

  mutable std::mutex mu_;
  MigState state_ = MigState::kRunning;
  std::vector<std::pair<MigState, MigState>> arcs_;
  uint64_t hang_attempts_ = 0;
  std::vector<ArcFailure> arc_failures_;
  bool precopy_v2_enabled_ = false;
  bool reinit_pending_ = false;
  uint64_t next_session_id_ = 1;

  std::unique_ptr<SavingSession> saving_;
  uint64_t saving_id_ = 0;
  uint64_t accrued_dirty_bytes_ = 0;
  double accrual_fraction_ = 0;
  uint64_t last_accrual_ns_ = 0;
  uint64_t last_stream_bytes_ = 0;
  uint64_t last_stream_hash_ = 0;
  bool last_stream_complete_ = false;

  std::unique_ptr<ResumingSession> resuming_;
  uint64_t resuming_id_ = 0;
  bool restored_ok_ = false;
  uint64_t restored_hash_ = 0;
  uint64_t restored_bytes_ = 0;

  DmaLog dma_log_;
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_VFIO_DEVICE_H_
