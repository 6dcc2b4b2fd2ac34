#include "io/transport.h"

#include <algorithm>
#include <cstring>

namespace converge {

Result<size_t> ReadFull(Transport& transport, std::span<uint8_t> buf) {
  size_t done = 0;
  while (done < buf.size()) {
    CONVERGE_ASSIGN_OR_RETURN(size_t n, transport.Read(buf.subspan(done)));
    if (n == 0) break;
    done += n;
  }
  return done;
}

Status MemoryTransport::Write(std::span<const uint8_t> bytes) {
  if (closed_) return FailedPreconditionError("write to a closed transport");
  data_.insert(data_.end(), bytes.begin(), bytes.end());
  bytes_written_ += bytes.size();
  return OkStatus();
}

Result<size_t> MemoryTransport::Read(std::span<uint8_t> buf) {
  std::span<const uint8_t> src =
      has_input_ ? input_ : std::span<const uint8_t>(data_);
  const size_t n = std::min(buf.size(), src.size() - read_pos_);
  if (n > 0) std::memcpy(buf.data(), src.data() + read_pos_, n);
  read_pos_ += n;
  bytes_read_ += n;
  return n;
}

Status MemoryTransport::Close() {
  closed_ = true;
  return OkStatus();
}

}  // namespace converge
