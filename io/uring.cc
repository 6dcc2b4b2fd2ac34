#include "io/uring.h"

#include <cassert>
#include <cerrno>
#include <string>

namespace converge {
namespace {

// ENOMEM from io_uring setup or buffer registration is almost always the
// locked-memory limit.
Status UringError(int negative_errno, std::string_view what) {
  const int err = -negative_errno;
  if (err == ENOMEM) {
    return ErrnoStatus(err, std::string(what) +
                                " (raise the locked-memory limit: ulimit -l)");
  }
  return ErrnoStatus(err, what);
}

}  // namespace

Result<std::unique_ptr<Uring>> Uring::Create(const UringOptions& options) {
  if (options.entries == 0 || options.entries > 32768) {
    return InvalidArgumentError("io_uring entries must be in [1, 32768], got " +
                                std::to_string(options.entries));
  }
  std::unique_ptr<Uring> uring(new Uring());
  io_uring_params params{};
  int r = io_uring_queue_init_params(options.entries, &uring->ring_, &params);
  if (r < 0) return UringError(r, "io_uring_queue_init");
  uring->ring_ready_ = true;  // from here on ~Uring() unwinds
  uring->features_ = params.features;

  constexpr uint32_t kNeeded = IORING_FEAT_NODROP | IORING_FEAT_SUBMIT_STABLE;
  if ((params.features & kNeeded) != kNeeded) {
    return NotSupportedError(
        "io_uring lacks IORING_FEAT_NODROP/SUBMIT_STABLE (kernel < 5.5)");
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&uring->ring_);
  if (probe == nullptr) return NotSupportedError("io_uring probe failed");
  struct {
    int op;
    const char* name;
  } const kOps[] = {{IORING_OP_READ, "READ"},
                    {IORING_OP_WRITE, "WRITE"},
                    {IORING_OP_READ_FIXED, "READ_FIXED"},
                    {IORING_OP_WRITE_FIXED, "WRITE_FIXED"}};
  for (const auto& op : kOps) {
    if (!io_uring_opcode_supported(probe, op.op)) {
      io_uring_free_probe(probe);
      return NotSupportedError(std::string("io_uring opcode ") + op.name +
                               " not supported");
    }
  }
  io_uring_free_probe(probe);
  return uring;
}

Uring::~Uring() {
  if (!ring_ready_) return;
  // Closing the ring drops registered buffers and files with it.
  io_uring_queue_exit(&ring_);
}

Status Uring::RegisterBuffers(std::span<const iovec> iovecs) {
  assert(!buffers_registered_ && !iovecs.empty());
  int r = io_uring_register_buffers(&ring_, iovecs.data(),
                                    static_cast<unsigned>(iovecs.size()));
  if (r < 0) return UringError(r, "io_uring_register_buffers");
  buffers_registered_ = true;
  return OkStatus();
}

Status Uring::UnregisterBuffers() {
  if (!buffers_registered_) return OkStatus();
  int r = io_uring_unregister_buffers(&ring_);
  if (r < 0) return UringError(r, "io_uring_unregister_buffers");
  buffers_registered_ = false;
  return OkStatus();
}

Status Uring::RegisterFiles(std::span<const int> fds) {
  assert(!files_registered_ && !fds.empty());
  int r = io_uring_register_files(&ring_, fds.data(),
                                  static_cast<unsigned>(fds.size()));
  if (r < 0) return UringError(r, "io_uring_register_files");
  files_registered_ = true;
  return OkStatus();
}

Status Uring::UnregisterFiles() {
  if (!files_registered_) return OkStatus();
  int r = io_uring_unregister_files(&ring_);
  if (r < 0) return UringError(r, "io_uring_unregister_files");
  files_registered_ = false;
  return OkStatus();
}

bool Uring::PrepRead(int fd, void* buf, unsigned length, uint64_t offset,
                     uint64_t user_data, int rw_flags) {
  io_uring_sqe* sqe = GetSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_read(sqe, fd, buf, length, offset);
  sqe->rw_flags = rw_flags;
  io_uring_sqe_set_data64(sqe, user_data);
  return true;
}

bool Uring::PrepReadFixed(int fd, void* buf, unsigned length, uint64_t offset,
                          int buf_index, uint64_t user_data, int rw_flags) {
  assert(buffers_registered_);
  io_uring_sqe* sqe = GetSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_read_fixed(sqe, fd, buf, length, offset, buf_index);
  sqe->rw_flags = rw_flags;
  io_uring_sqe_set_data64(sqe, user_data);
  return true;
}

bool Uring::PrepWrite(int fd, const void* buf, unsigned length,
                      uint64_t offset, uint64_t user_data) {
  io_uring_sqe* sqe = GetSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_write(sqe, fd, buf, length, offset);
  io_uring_sqe_set_data64(sqe, user_data);
  return true;
}

bool Uring::PrepCancel(uint64_t target, uint64_t user_data) {
  io_uring_sqe* sqe = GetSqe();
  if (sqe == nullptr) return false;
  io_uring_prep_cancel64(sqe, target, 0);
  io_uring_sqe_set_data64(sqe, user_data);
  return true;
}

Result<unsigned> Uring::Submit() {
  return RetryOnEintr([&]() -> Result<unsigned> {
    int r = io_uring_submit(&ring_);
    if (r < 0) return UringError(r, "io_uring_submit");
    return static_cast<unsigned>(r);
  });
}

Result<unsigned> Uring::SubmitAndWait(unsigned wait_nr) {
  return RetryOnEintr([&]() -> Result<unsigned> {
    int r = io_uring_submit_and_wait(&ring_, wait_nr);
    if (r < 0) return UringError(r, "io_uring_submit_and_wait");
    return static_cast<unsigned>(r);
  });
}

Result<io_uring_cqe*> Uring::WaitCqe() {
  return RetryOnEintr([&]() -> Result<io_uring_cqe*> {
    io_uring_cqe* cqe = nullptr;
    int r = io_uring_wait_cqe(&ring_, &cqe);
    if (r < 0) return UringError(r, "io_uring_wait_cqe");
    return cqe;
  });
}

io_uring_cqe* Uring::PeekCqe() {
  io_uring_cqe* cqe = nullptr;
  if (io_uring_peek_cqe(&ring_, &cqe) < 0) return nullptr;
  return cqe;
}

}  // namespace converge
