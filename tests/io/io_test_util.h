// Test helpers for io/: content generators, a pipe fed by a thread, and a
// Kernel that injects read results and answers PRECOPY_INFO.

#ifndef CONVERGE_TESTS_IO_IO_TEST_UTIL_H_
#define CONVERGE_TESTS_IO_IO_TEST_UTIL_H_

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <span>
#include <thread>
#include <vector>

#include "iommu/kernel.h"
#include "iommu/uapi_compat.h"
#include "io/wire_format.h"

namespace converge::testing {

enum class Content { kZero, kText, kRandom, kMixed };

// Fills out with reproducible content of the given kind. kMixed is a page
// by page mix of the other three.
inline void FillContent(Content kind, uint64_t seed, std::span<uint8_t> out,
                        size_t page = 4096) {
  std::mt19937_64 rng(seed);
  static const char* kWords[] = {"vfio ", "migration ", "dirty ", "page ",
                                 "iommu ", "stream ", "\n", "0x1f3a ",
                                 "device ", "state "};
  auto fill = [&](Content k, std::span<uint8_t> dst) {
    switch (k) {
      case Content::kZero:
        std::memset(dst.data(), 0, dst.size());
        break;
      case Content::kText: {
        size_t i = 0;
        while (i < dst.size()) {
          const char* w = kWords[rng() % 10];
          for (; *w != 0 && i < dst.size(); ++w) dst[i++] = uint8_t(*w);
        }
        break;
      }
      case Content::kRandom:
        for (auto& b : dst) b = uint8_t(rng());
        break;
      case Content::kMixed:
        break;
    }
  };
  if (kind != Content::kMixed) return fill(kind, out);
  for (size_t off = 0; off < out.size(); off += page) {
    const size_t n = std::min(page, out.size() - off);
    fill(static_cast<Content>(rng() % 3), out.subspan(off, n));
  }
}

inline std::vector<uint8_t> MakeContent(Content kind, uint64_t seed,
                                        size_t bytes) {
  std::vector<uint8_t> v(bytes);
  FillContent(kind, seed, v);
  return v;
}

// A pipe whose write end is fed by a thread writing data in pieces of
// piece_bytes, then closed (the reader sees end of file).
class FedPipe {
 public:
  FedPipe(std::vector<uint8_t> data, size_t piece_bytes, bool nonblock = false)
      : data_(std::move(data)) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0)) != 0) abort();
    read_fd_ = fds[0];
    write_fd_ = fds[1];
    if (nonblock) {  // only the read end is non-blocking
      ::fcntl(write_fd_, F_SETFL, 0);
    }
    thread_ = std::thread([this, piece_bytes] {
      size_t off = 0;
      while (off < data_.size()) {
        const size_t n = std::min(piece_bytes, data_.size() - off);
        ssize_t w = ::write(write_fd_, data_.data() + off, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += size_t(w);
      }
      ::close(write_fd_);
    });
  }
  ~FedPipe() {
    thread_.join();
    ::close(read_fd_);
  }
  int read_fd() const { return read_fd_; }
  const std::vector<uint8_t>& data() const { return data_; }

 private:
  std::vector<uint8_t> data_;
  int read_fd_ = -1;
  int write_fd_ = -1;
  std::thread thread_;
};

// Reads through this kernel return scripted results first (bytes to copy,
// or -errno), then forward; GET_PRECOPY_INFO is answered from precopy.
class ScriptedKernel : public ForwardingKernel {
 public:
  struct Step {
    long result;  // > 0: copy that many bytes of `bytes`; else 0 or -errno
    std::vector<uint8_t> bytes;
  };
  ScriptedKernel() : ForwardingKernel(Kernel::Default()) {}

  std::deque<Step> reads;
  std::vector<uint8_t> written;
  long write_limit = 0;      // > 0: short writes of at most this many bytes
  int precopy_errno = 0;
  vfio_precopy_info precopy{};
  int precopy_calls = 0;

 protected:
  Result<size_t> DoRead(int fd, void* buf, size_t length) override {
    if (reads.empty()) return ForwardingKernel::DoRead(fd, buf, length);
    Step s = std::move(reads.front());
    reads.pop_front();
    if (s.result < 0) return ErrnoStatus(int(-s.result), "scripted read");
    const size_t n = std::min(length, size_t(s.result));
    if (n > 0) std::memcpy(buf, s.bytes.data(), n);
    return n;
  }
  Result<size_t> DoWrite(int, const void* buf, size_t length) override {
    size_t n = length;
    if (write_limit > 0) n = std::min(n, size_t(write_limit));
    const uint8_t* p = static_cast<const uint8_t*>(buf);
    written.insert(written.end(), p, p + n);
    return n;
  }
  Result<int> DoIoctl(int fd, unsigned long request, void* arg) override {
    if (request != VFIO_MIG_GET_PRECOPY_INFO) {
      return ForwardingKernel::DoIoctl(fd, request, arg);
    }
    ++precopy_calls;
    if (precopy_errno != 0) return ErrnoStatus(precopy_errno, "scripted ioctl");
    auto* info = static_cast<vfio_precopy_info*>(arg);
    if (info->argsz < sizeof(vfio_precopy_info)) {
      return ErrnoStatus(EINVAL, "scripted ioctl");
    }
    info->flags = 0;
    info->initial_bytes = precopy.initial_bytes;
    info->dirty_bytes = precopy.dirty_bytes;
    return 0;
  }
};

// Frames one record by hand (tests build malformed streams with it).
inline std::vector<uint8_t> FrameRecord(RecordType type, Codec encoding,
                                        uint64_t index,
                                        std::span<const uint8_t> payload) {
  RecordHeader h;
  h.type = type;
  h.encoding = encoding;
  h.payload_bytes = uint32_t(payload.size());
  h.index = index;
  std::vector<uint8_t> out(kRecordHeaderBytes);
  EncodeRecordHeader(h, out.data());
  const std::span<const uint8_t> parts[] = {payload};
  h.checksum = RecordChecksum(out.data(), parts);
  EncodeRecordHeader(h, out.data());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_IO_IO_TEST_UTIL_H_
