#include "io/data_fd_reader.h"

#include <cassert>
#include <cerrno>

#include "iommu/uapi_compat.h"

namespace converge {

Result<ReadOutcome> ClassifyDataFdRead(DataPhase phase, long result,
                                       std::string_view device) {
  const std::string what = "read data_fd of device " + std::string(device);
  if (result > 0) return ReadOutcome::kData;
  if (result == 0) {
    return phase == DataPhase::kPreCopy ? ReadOutcome::kNothingNow
                                        : ReadOutcome::kEnd;
  }
  const int err = static_cast<int>(-result);
  if (err == EAGAIN) return ReadOutcome::kNothingNow;
  if (err == ENOMSG) {
    if (phase == DataPhase::kPreCopy) return ReadOutcome::kNothingNow;
    return IoError(what + ": ENOMSG in STOP_COPY (the driver broke the "
                          "protocol)");
  }
  return ErrnoStatus(err, what);
}

Result<PrecopyInfo> QueryPrecopyInfo(Kernel& kernel, int data_fd,
                                     std::string_view device) {
  vfio_precopy_info info{};
  info.argsz = sizeof(info);
  Result<int> r = kernel.Ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info);
  if (!r.ok()) {
    return r.status().WithContext("VFIO_MIG_GET_PRECOPY_INFO on device " +
                                  std::string(device));
  }
  return PrecopyInfo{info.initial_bytes, info.dirty_bytes};
}

DataFdReader::DataFdReader(Kernel& kernel, int data_fd, uint32_t device_id,
                           std::string name, const DataFdReaderOptions& options)
    : kernel_(kernel),
      fd_(data_fd),
      device_id_(device_id),
      name_(std::move(name)),
      options_(options) {
  assert(options_.chunk_bytes > 0);
}

Result<ReadOutcome> DataFdReader::Read(ByteBuffer& chunk, uint64_t* sequence) {
  assert(!ended_);
  chunk.resize(options_.chunk_bytes);
  Result<size_t> n = kernel_.Read(fd_, chunk.data(), chunk.size());
  long result = 0;
  if (n.ok()) {
    result = static_cast<long>(*n);
  } else if (n.status().sys_errno() != 0) {
    result = -n.status().sys_errno();
  } else {
    return n.status().WithContext("read data_fd of device " + name_);
  }
  CONVERGE_ASSIGN_OR_RETURN(ReadOutcome outcome,
                            ClassifyDataFdRead(phase_, result, name_));
  chunk.resize(outcome == ReadOutcome::kData ? static_cast<size_t>(result) : 0);
  if (outcome == ReadOutcome::kEnd) ended_ = true;
  if (outcome == ReadOutcome::kData) {
    bytes_read_ += chunk.size();
    if (sequence != nullptr) *sequence = next_sequence_;
    ++next_sequence_;
  }
  return outcome;
}

Result<PrecopyInfo> DataFdReader::QueryPrecopyInfo() {
  return converge::QueryPrecopyInfo(kernel_, fd_, name_);
}

}  // namespace converge
